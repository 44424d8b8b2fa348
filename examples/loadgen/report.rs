//! What a run prints: one JSON line per run, and with `--mode both`,
//! `tls-both` or `typed-both` a summary line over the rounds.

use std::collections::HashMap;

use crate::window::Outcome;
use crate::{Args, Mode};

/// The JSON line of one run of `name` ("raw", "peerwire", "tls" or
/// "typed") at `rate` calls per second.
pub fn run_line(name: &str, args: &Args, outcome: &Outcome, rate: f64) -> serde_json::Value {
    let q = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
    let (client_cs, client_wakeups, client_preemptions) = outcome.switches.0.json(outcome.calls);
    let (server_cs, server_wakeups, server_preemptions) = outcome.switches.1.json(outcome.calls);
    serde_json::json!({
        "mode": name,
        "concurrency": args.concurrency,
        "payload": args.payload,
        "connections": args.connections,
        "seconds": (outcome.elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "pin": format!("{:?}", args.pin).to_lowercase(),
        "malloc": format!("{:?}", args.malloc).to_lowercase(),
        "calls": outcome.calls,
        "errors": outcome.errors,
        "calls_per_s": rate.round(),
        "p50_us": q(0.5),
        "p99_us": q(0.99),
        "p999_us": q(0.999),
        "client_cs": client_cs,
        "server_cs": server_cs,
        "client_wakeups_per_call": client_wakeups,
        "server_wakeups_per_call": server_wakeups,
        "client_preemptions_per_call": client_preemptions,
        "server_preemptions_per_call": server_preemptions,
    })
}

/// The summary line over the rounds of `--mode both`, `tls-both` or
/// `typed-both`, from each run's calls per second by name; none for the
/// other modes.
pub fn summary(
    args: &Args,
    rates: &mut HashMap<&'static str, Vec<f64>>,
) -> Option<serde_json::Value> {
    match args.mode {
        Mode::Both => Some(raw_summary(args, rates)),
        Mode::TypedBoth => Some(typed_summary(args, rates)),
        Mode::TlsBoth => Some(tls_summary(args, rates)),
        _ => None,
    }
}

/// `--mode both`: the median calls per second of raw and of peerwire.
fn raw_summary(args: &Args, rates: &mut HashMap<&'static str, Vec<f64>>) -> serde_json::Value {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let raw = median(rates.get_mut("raw").unwrap());
    let peerwire = median(rates.get_mut("peerwire").unwrap());
    serde_json::json!({
        "summary": "median calls/s over rounds",
        "concurrency": args.concurrency,
        "payload": args.payload,
        "connections": args.connections,
        "raw_calls_per_s": raw.round(),
        "peerwire_calls_per_s": peerwire.round(),
        "ratio": (peerwire / raw * 1000.0).round() / 1000.0,
    })
}

/// `--mode typed-both`: typed/`Bytes`, each round's ratio and the median.
fn typed_summary(args: &Args, rates: &HashMap<&'static str, Vec<f64>>) -> serde_json::Value {
    let raw_bytes = &rates["peerwire"];
    let typed = &rates["typed"];
    let mut ratios: Vec<f64> = raw_bytes.iter().zip(typed).map(|(b, t)| t / b).collect();
    ratios.sort_by(f64::total_cmp);
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    serde_json::json!({
        "summary": "typed/Bytes calls/s, each round's ratio and the median",
        "typed_server": args.typed_server,
        "concurrency": args.concurrency,
        "payload": args.payload,
        "connections": args.connections,
        "bytes_calls_per_s": median(raw_bytes).round(),
        "typed_calls_per_s": median(typed).round(),
        "ratios": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
        "ratio": round3(ratios[ratios.len() / 2]),
        "spread": round3(ratios[ratios.len() - 1] - ratios[0]),
    })
}

/// `--mode tls-both`: TLS/plain, each round's ratio and the median.
fn tls_summary(args: &Args, rates: &HashMap<&'static str, Vec<f64>>) -> serde_json::Value {
    let plain = &rates["peerwire"];
    let tls = &rates["tls"];
    let mut ratios: Vec<f64> = plain.iter().zip(tls).map(|(p, t)| t / p).collect();
    ratios.sort_by(f64::total_cmp);
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    serde_json::json!({
        "summary": "TLS/plain calls/s, each round's ratio and the median",
        "concurrency": args.concurrency,
        "payload": args.payload,
        "connections": args.connections,
        "starttls": args.starttls,
        "ratios": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
        "ratio": round3(ratios[ratios.len() / 2]),
        "spread": round3(ratios[ratios.len() - 1] - ratios[0]),
    })
}
