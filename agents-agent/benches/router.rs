//! Router decision time (issue 4's target: ≤ 50 µs; the seed asks < 10 ms),
//! against a baseline measured in the same run: building the request and
//! formatting a reason string, the floor any decision pays.

use agents_agent::llm::router::{route, Plan, Policy, Preference, Request, Target, Usage};
use agents_agent::llm::tier::Tier;
use std::hint::black_box;
use std::time::Instant;

const N: u32 = 200_000;

fn main() {
    let policy = Policy {
        local_model: Some("ollama/deepseek-r1:8b".into()),
        plan: Plan::Paid(Tier::Pro),
        ..Policy::default()
    };
    let usage = Usage {
        spent_today: 3.0,
        ..Usage::default()
    };
    let requests: Vec<Request> = (0..64u64)
        .map(|i| Request {
            tokens: i * 211,
            attachments: (i % 7 == 0) as u32,
            tools: (i % 5) as u32,
            retry_of: (i % 9 == 0).then_some(Target::Cloud(Tier::Boost)),
        })
        .collect();
    let t = Instant::now();
    for i in 0..N {
        let r = &requests[i as usize % requests.len()];
        black_box(format!("{} tokens", black_box(r).tokens));
    }
    let base = t.elapsed().as_nanos() as f64 / f64::from(N);
    let mut pref = Preference::Local;
    let t = Instant::now();
    for i in 0..N {
        let r = &requests[i as usize % requests.len()];
        let p = Policy {
            preference: pref,
            ..policy.clone()
        };
        black_box(route(black_box(&p), black_box(r), black_box(&usage)));
        pref = if i % 2 == 0 {
            Preference::Cloud
        } else {
            Preference::Local
        };
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(N);
    println!("| measure | router | baseline (same run) | ratio / target |");
    println!("|---|---|---|---|");
    println!(
        "| complexity router decision ({N} decisions, mixed rules) | {:.2} µs | {:.2} µs format a reason | ×{:.1}; target ≤ 50 µs ({:.0}× under) |",
        ns / 1000.0,
        base / 1000.0,
        ns / base,
        50_000.0 / ns
    );
}
