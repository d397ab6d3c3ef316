//! The syscall floor: what a fan-out costs when the server does nothing but hand pre-framed bytes to the
//! kernel. One 128-byte text message, framed once, is written to every one of N loopback sockets at a fixed
//! rate, by one thread, with no WebSocket layer, queue, task or wakeup in between:
//!
//! - `delivery`: one `write` per delivery (each socket gets each frame as it is published);
//! - `tick`: one `write` per socket per tick of `TICK_MS`, carrying every frame published in that tick.
//!
//! The readers run on another thread and count what arrives, so a run is valid only when every byte did.
//! Prints one JSON line: the writer thread's CPU time per delivery and the writes per delivery, the figures
//! BENCHMARKS.md sets beside the servers' CPU per delivery in the fan-out scenario.
//!
//! ```text
//! syscall_floor delivery|tick SUBSCRIBERS RATE SECONDS [TICK_MS]
//! ```

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// The payload published: what the fan-out scenario's publisher sends, give or take its JSON.
const PAYLOAD: usize = 128;
/// How long the readers may take to receive the last bytes once the writer is done.
const DRAIN: Duration = Duration::from_secs(10);

fn usage() -> ! {
    eprintln!("usage: syscall_floor delivery|tick SUBSCRIBERS RATE SECONDS [TICK_MS]");
    std::process::exit(2)
}

/// A server-to-client text frame (unmasked) carrying `len` bytes.
fn text_frame(len: usize) -> Vec<u8> {
    let mut frame = vec![0x81];
    match len {
        0..=125 => frame.push(len as u8),
        126..=0xffff => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.resize(frame.len() + len, b'x');
    frame
}

/// CPU time (user + system) this thread has used, from `/proc/thread-self/stat`, in seconds.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 2..]
        .split(' ')
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on every Linux this runs on.
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let per_tick = match args.first().map(String::as_str) {
        Some("delivery") => false,
        Some("tick") => true,
        _ => usage(),
    };
    let (subscribers, rate, seconds) = (num(1) as usize, num(2), num(3));
    let tick = Duration::from_millis(args.get(4).map_or(5, |_| num(4)));
    if subscribers == 0 || rate == 0 || seconds == 0 || seconds > 600 {
        usage();
    }

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    let received = Arc::new(AtomicU64::new(0));
    let readers = {
        let received = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let mut tasks = Vec::with_capacity(subscribers);
                for _ in 0..subscribers {
                    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    let received = received.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = socket.read(&mut buf).await {
                            received.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
        })
    };
    let mut sockets: Vec<TcpStream> = (0..subscribers)
        .map(|_| {
            let (socket, _) = listener.accept().expect("accept");
            socket.set_nodelay(true).expect("TCP_NODELAY");
            socket
        })
        .collect();

    let frame = text_frame(PAYLOAD);
    let messages = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut batch = Vec::new();
    let (mut writes, mut published) = (0u64, 0u64);
    let cpu_before = thread_cpu_seconds();
    let start = Instant::now();
    while published < messages {
        // Sleep to the next message (delivery) or the next tick (tick), then publish what is due.
        let next = if per_tick {
            start + tick * u32::try_from(start.elapsed().as_nanos() / tick.as_nanos() + 1).unwrap()
        } else {
            start + interval * u32::try_from(published).unwrap()
        };
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(messages);
        if per_tick {
            batch.clear();
            for _ in published..due {
                batch.extend_from_slice(&frame);
            }
            for socket in &mut sockets {
                socket.write_all(&batch).expect("write");
                writes += 1;
            }
            published = due;
        } else {
            for _ in published..due {
                for socket in &mut sockets {
                    socket.write_all(&frame).expect("write");
                    writes += 1;
                }
            }
            published = due;
        }
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu_seconds() - cpu_before;
    drop(sockets);
    let expected = messages * subscribers as u64 * frame.len() as u64;
    let deadline = Instant::now() + DRAIN;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = received.load(Ordering::Relaxed);
    let _ = readers.join();
    let deliveries = messages * subscribers as u64;
    println!(
        "{}",
        serde_json::json!({
            "scenario": "syscall-floor",
            "mode": if per_tick { "tick" } else { "delivery" },
            "tick_ms": per_tick.then_some(tick.as_millis() as u64),
            "subscribers": subscribers,
            "rate": rate,
            "seconds": seconds,
            "elapsed_s": elapsed.as_secs_f64(),
            "deliveries": deliveries,
            "delivered_pct": 100.0 * got as f64 / expected as f64,
            "writes": writes,
            "writes_per_delivery": writes as f64 / deliveries as f64,
            "writer_cpu_s": cpu,
            "ns_per_delivery": cpu * 1e9 / deliveries as f64,
        })
    );
}
