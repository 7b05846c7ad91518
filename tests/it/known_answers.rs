//! Done-when 1: the hard cases of primality, answered right through the socket.
//! Every expected value was checked independently (sympy.isprime) before it went in here.

use crate::common::{describe, mersenne, parse_lines, Daemon};

fn hard_cases() -> Vec<(String, bool)> {
    let fixed: &[(&str, bool)] = &[
        ("0", false),
        ("1", false),
        ("2", true),
        ("97", true),
        // Carmichael numbers: a Fermat test calls these prime.
        ("561", false),
        ("1105", false),
        ("1729", false),
        ("2465", false),
        ("2821", false),
        ("6601", false),
        ("8911", false),
        ("18457883288813385649", false), // Chernick (6k+1)(12k+1)(18k+1), k = 242396, > 2^64
        // Strong pseudoprimes to base 2, and to many bases.
        ("2047", false),
        ("3277", false),
        ("4033", false),
        ("3215031751", false),
        ("341550071728321", false),
        ("3825123056546413051", false),
        ("36893525818586872753", false), // p(2p-1), strong pseudoprime to base 2, > 2^64
        ("318665857834031151167461", false),
        ("3317044064679887385961981", false),
        // Strong Lucas pseudoprimes.
        ("5459", false),
        ("5777", false),
        ("10877", false),
        ("16109", false),
        ("18971", false),
        // Around 2^32, 2^64, 2^128.
        ("4294967291", true),
        ("4294967297", false),
        ("4294967311", true),
        ("18446744073709551557", true),
        ("18446744073709551615", false),
        ("18446744073709551617", false),
        ("18446744073709551629", true),
        ("340282366920938463463374607431768211297", true),
        ("340282366920938463463374607431768211457", false),
        ("340282366920938463463374607431768211507", true),
    ];
    let mut cases: Vec<(String, bool)> = fixed.iter().map(|&(n, p)| (n.to_string(), p)).collect();
    // Mersenne numbers: prime exponents 61, 89, 107, 127, 521, 607, 1279; composite 67, 257.
    for (p, prime) in [
        (61, true),
        (67, false),
        (89, true),
        (107, true),
        (127, true),
    ] {
        cases.push((mersenne(p), prime));
    }
    for (p, prime) in [(257, false), (521, true), (607, true), (1279, true)] {
        cases.push((mersenne(p), prime));
    }
    cases
}

#[test]
fn hard_cases_are_answered_correctly_through_the_socket() {
    let daemon = Daemon::start(2);
    let cases = hard_cases();
    let mut args = vec!["check", "--json"];
    args.extend(cases.iter().map(|(n, _)| n.as_str()));
    let out = daemon.cli(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let lines = parse_lines(&out.stdout);
    assert_eq!(lines.len(), cases.len());
    for ((n, prime), line) in cases.iter().zip(&lines) {
        assert_eq!(line["n"], n.as_str(), "answers come in input order");
        assert_eq!(line["prime"], *prime, "wrong answer for {n}");
        assert_eq!(line["attempts"], 1);
        assert!(line["id"].as_u64().is_some());
    }
}

#[test]
fn human_output_and_the_submit_then_result_path() {
    let daemon = Daemon::start(1);
    let out = daemon.cli(&["check", "97", "0091"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "97 is prime\n91 is composite\n"
    );

    let submitted = daemon.json(&["submit", "561", "7919"]);
    assert_eq!(submitted[0]["n"], "561");
    let ids: Vec<String> = submitted.iter().map(|l| l["id"].to_string()).collect();
    let mut args = vec!["result", "--wait"];
    args.extend(ids.iter().map(String::as_str));
    let results = daemon.json(&args);
    assert_eq!(results[0]["prime"], false);
    assert_eq!(results[1]["prime"], true);
    assert_eq!(results[1]["n"], "7919");
    assert_eq!(daemon.status()["completed"], 4);
}

#[test]
fn stdin_streams_in_pipelined_batches_and_keeps_input_order() {
    // 50,000 lines through stdin: pipelined batches, answers in input order, each checked
    // against trial division.
    let daemon = Daemon::start(2);
    let input: String = (0..50_000u64).map(|i| format!("{}\n", i * 7 + 1)).collect();
    let out = daemon.cli_stdin(&["check", "--json"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    let lines = parse_lines(&out.stdout);
    assert_eq!(lines.len(), 50_000);
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 * 7 + 1;
        assert_eq!(line["n"], n.to_string());
        assert_eq!(
            line["prime"],
            crate::common::is_prime_by_trial_division(n),
            "{n}"
        );
    }
}
