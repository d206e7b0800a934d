//! Reads this host's input path and prints the reachability verdict as JSON:
//! `reach-verdict [--interfaces eth0,eth1] [--ports 80,443] [--lockdown] CIDR…`
//! (`--lockdown`: also list the outsiders the path accepts, `exposed`)
//! (used by the crate's sandbox tests and by `make bench`; also handy by hand, as root).

#![forbid(unsafe_code)]

use std::time::Instant;

use cf_allow_reach::{HostModel, Probe, RangeSet, ReadOptions};

fn main() {
    let mut opts = ReadOptions::default();
    let mut ports: Vec<u16> = Vec::new();
    let mut nets = Vec::new();
    let mut lockdown = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--lockdown" => lockdown = true,
            "--interfaces" => {
                opts.interfaces = args
                    .next()
                    .map(|v| v.split(',').map(String::from).collect());
            }
            "--ports" => {
                for p in args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|p| !p.is_empty())
                {
                    match p.parse() {
                        Ok(p) => ports.push(p),
                        Err(_) => fail(&format!("not a port: {p}")),
                    }
                }
            }
            cidr => match cidr.parse() {
                Ok(n) => nets.push(n),
                Err(_) => fail(&format!("not a CIDR: {cidr}")),
            },
        }
    }
    let start = Instant::now();
    let model = HostModel::read(&opts);
    let read = start.elapsed();
    let verdict = model.evaluate(&Probe {
        ranges: RangeSet::aggregated(nets),
        ports,
        lockdown,
    });
    let total = start.elapsed();
    let mut json = verdict.to_json();
    if let Some(o) = json.as_object_mut() {
        o.insert("read_us".into(), (read.as_micros() as u64).into());
        o.insert(
            "evaluate_us".into(),
            ((total - read).as_micros() as u64).into(),
        );
        o.insert("notes".into(), model.notes().into());
    }
    println!("{json}");
    for w in verdict.warnings(&|_| None) {
        eprintln!("{w}");
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("reach-verdict: {msg}");
    std::process::exit(2);
}
