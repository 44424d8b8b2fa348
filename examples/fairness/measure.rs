//! The measured window: a 1 ms ticker and an honest client making one
//! call at a time, on the runtime under test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use peerwire::{Client, ClientOptions, Endpoint};

use crate::{ECHO, PROGRAM, VERSION};

/// The measured window.
#[derive(Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    /// True for a gap that ends in the window (a long one that began
    /// before it counts too).
    fn holds(&self, end: Instant) -> bool {
        end > self.start && end <= self.end
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("a histogram")
}

/// What the side under test saw in the window.
pub struct Measured {
    /// The ticker's gaps between ticks, µs.
    pub gaps: Histogram<u64>,
    /// The honest client's calls, µs.
    pub latency: Histogram<u64>,
    pub calls: u64,
    pub errors: u64,
}

/// Runs the 1 ms ticker and the honest client (one call at a time) on
/// this runtime through the window.
pub async fn measure(
    address: SocketAddr,
    options: ClientOptions,
    payload: Bytes,
    window: Window,
) -> Measured {
    let ticker = tokio::spawn(async move {
        let mut gaps = histogram();
        let mut last = Instant::now();
        while last < window.end {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = Instant::now();
            if window.holds(now) {
                let _ = gaps.record((now - last).as_micros() as u64);
            }
            last = now;
        }
        gaps
    });
    let honest = tokio::spawn(async move {
        let client = Client::new(vec![Endpoint::from(address)], options).expect("a destination");
        let (mut latency, mut calls, mut errors) = (histogram(), 0, 0);
        loop {
            let started = Instant::now();
            if started >= window.end {
                break;
            }
            let result = client.call(PROGRAM, VERSION, ECHO, payload.clone()).await;
            let done = Instant::now();
            match result {
                // A call running at the window's end counts too.
                Ok(_) if done > window.start => {
                    calls += 1;
                    let _ = latency.record((done - started).as_micros().max(1) as u64);
                }
                Ok(_) => {}
                Err(error) => {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("honest call failed: {error}");
                    }
                }
            }
        }
        client.close();
        (latency, calls, errors)
    });
    let gaps = ticker.await.expect("the ticker");
    let (latency, calls, errors) = honest.await.expect("the honest client");
    Measured {
        gaps,
        latency,
        calls,
        errors,
    }
}
