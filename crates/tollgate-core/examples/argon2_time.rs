//! How long one argon2id password verification takes on this machine, with
//! Tollgate's parameters, on one thread, in a kept memory block as the
//! token service's hashing threads do ([`password::Hasher`]). `scripts/bench` uses it to compute
//! the login throughput the hardware allows (cores ÷ this time).
//!
//! ```sh
//! cargo run --release -p tollgate-core --example argon2_time -- [ROUNDS]
//! ```
//!
//! Prints the median milliseconds per verification on the last line.

use std::time::Instant;

use tollgate_core::{Secret, password};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 30,
    };
    let secret = Secret::new("a long enough benchmark password");
    let mut hasher = password::Hasher::new();
    let phc = hasher.hash(&secret)?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        if !hasher.verify(&secret, &phc)? {
            return Err("the password did not verify".into());
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "argon2id m={} KiB t={} p={}: {} verifications, min {:.2} ms, median {:.2} ms",
        password::M_COST,
        password::T_COST,
        password::P_COST,
        times.len(),
        times[0],
        median
    );
    println!("{median:.3}");
    Ok(())
}
