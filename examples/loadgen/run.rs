//! One measured run: a server thread and a client thread, each on its own
//! single-threaded runtime, pinned as `--pin` says.

use std::net::SocketAddr;

use bytes::Bytes;
use peerwire::{ProcError, Server, ServerOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::typed::TypedEchoServer;
use crate::window::{Outcome, drive};
use crate::{Args, ECHO, Mode, PROGRAM, Pin, VERSION, bench_support, raw};

fn pin(which: usize, pin: Pin) {
    let cpu = match pin {
        Pin::None => return,
        Pin::Same => 0,
        Pin::Split => which.min(bench_support::cpus() - 1),
    };
    if let Err(error) = bench_support::pin_to(cpu) {
        eprintln!("warning: could not pin: {error}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// One measured run: a server thread and a client thread.
pub fn run(mode: Mode, args: &Args) -> Outcome {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<(SocketAddr, i32)>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server_pin = args.pin;
    let max = args.concurrency.max(1);
    let starttls = args.starttls;
    let typed_server = args.typed_server && mode == Mode::Typed;
    #[cfg(not(feature = "tls"))]
    assert!(
        mode != Mode::Tls && !starttls,
        "built without the tls feature"
    );
    let server = std::thread::spawn(move || {
        pin(0, server_pin);
        let tid = nix::unistd::gettid().as_raw();
        runtime().block_on(async move {
            match mode {
                Mode::Raw => {
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addr_tx.send((listener.local_addr().unwrap(), tid)).unwrap();
                    let accept = async {
                        loop {
                            let (stream, _) = listener.accept().await.unwrap();
                            tokio::spawn(raw::serve(stream));
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        _ = stop_rx => {}
                    }
                }
                _ => {
                    let options = ServerOptions {
                        max_in_progress: max,
                        #[cfg(feature = "tls")]
                        tls: (mode == Mode::Tls).then(|| crate::tls::server(starttls)),
                        ..ServerOptions::default()
                    };
                    let server = Server::new(options);
                    let server = if typed_server {
                        server.program(TypedEchoServer)
                    } else {
                        server.service(
                            PROGRAM,
                            VERSION,
                            |_ctx, procedure, args: Bytes| async move {
                                match procedure {
                                    ECHO => Ok(args),
                                    _ => Err(ProcError::ProcUnavail),
                                }
                            },
                        )
                    };
                    let server = server.serve(&["127.0.0.1:0".parse().unwrap()]).unwrap();
                    addr_tx.send((server.local_addrs()[0], tid)).unwrap();
                    let _ = stop_rx.await;
                    drop(server);
                }
            }
        });
    });
    let (addr, server_tid) = addr_rx.recv().expect("the server started");
    let client_args = args.clone();
    let client = std::thread::spawn(move || {
        pin(1, client_args.pin);
        if client_args.perf_ctl.is_some() {
            let tid = nix::unistd::gettid().as_raw();
            eprintln!("loadgen: client_tid={tid} server_tid={server_tid}");
        }
        runtime().block_on(drive(mode, addr, server_tid, client_args))
    });
    let outcome = client.join().expect("the client thread");
    let _ = stop_tx.send(());
    server.join().expect("the server thread");
    outcome
}
