//! `cargo bench --bench commands`: how fast command text is parsed, valid and hostile.
//! Prints figures; there is no target, it shows that parsing costs nothing next to the I/O.

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let flood = "x".repeat(10_000);
    let inputs = [
        "add somechannel quality=720p60 upload=off chat=on",
        "add https://www.twitch.tv/somechannel?x=y",
        "code youtube http://127.0.0.1:8085/?code=4%2F0AbCdEfGhIjK&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fyoutube.upload",
        "add ../../etc",
        "add f\u{200b}oo",
        flood.as_str(),
    ];
    for input in inputs {
        let rounds = 200_000;
        let started = Instant::now();
        for _ in 0..rounds {
            let _ = black_box(recbot_commands::parse(black_box(input)));
        }
        let per = started.elapsed().as_nanos() as f64 / rounds as f64;
        let shown: String = input.chars().take(40).collect();
        println!("{per:>9.0} ns/parse  {shown:?}");
    }
}
