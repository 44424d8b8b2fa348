//! What the flooders send: pipelined calls to the server under test, or,
//! as a hostile server, replies without end to a flooded client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use peerwire::peer::HANDSHAKE_PROGRAM;
use peerwire::proto::{AcceptStatus, CallHeader, Message, ReplyBody, record_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{ECHO, Flood, PROGRAM, VERSION};

/// Records in one write of a flooder.
const BATCH: u32 = 1024;

/// Appends `message` with its record mark.
fn push_record(out: &mut BytesMut, message: &Message) {
    let mut body = BytesMut::new();
    message.encode(&mut body);
    out.extend_from_slice(&record_header(body.len() as u32, true));
    out.extend_from_slice(&body);
}

/// A flooding client of the server under test: writes batches of calls
/// (`Calls`: to the echo procedure; `Null`: the HELLO program's NULL,
/// before any HELLO) until stopped, and reads the replies, counting them.
pub async fn flood_calls(
    address: SocketAddr,
    flood: Flood,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
) {
    let header = match flood {
        Flood::Null => CallHeader::new(HANDSHAKE_PROGRAM, 1, 0),
        _ => CallHeader::new(PROGRAM, VERSION, ECHO),
    };
    let mut batch = BytesMut::new();
    for xid in 0..BATCH {
        push_record(
            &mut batch,
            &Message::call(xid, header.clone(), Bytes::new()),
        );
    }
    let stream = TcpStream::connect(address)
        .await
        .expect("connected to the server under test");
    let (mut reader, mut writer) = stream.into_split();
    let reading = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut held = 0usize;
        loop {
            buf.clear();
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // Replies to these calls are 28 bytes with their mark.
                    held += n;
                    counter.fetch_add((held / 28) as u64, Ordering::Relaxed);
                    held %= 28;
                }
            }
        }
    });
    while !stop.load(Ordering::Relaxed) {
        if writer.write_all(&batch).await.is_err() {
            break;
        }
    }
    drop(writer);
    reading.abort();
}

/// The hostile server's side of one connection: sends records without end
/// (see [`Flood::Replies`] and [`Flood::Unrequested`]) until stopped.
pub async fn flood_records(stream: TcpStream, flood: Flood, stop: Arc<AtomicBool>) {
    let (mut reader, mut writer) = stream.into_split();
    // The XID of the client's latest call, read from its records.
    let latest = Arc::new(AtomicU32::new(0));
    let seen = latest.clone();
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            while buf.len() >= 8 {
                let len =
                    (u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) & 0x7fff_ffff) as usize;
                if buf.len() < 4 + len {
                    break;
                }
                seen.store(
                    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    Ordering::Relaxed,
                );
                buf.advance(4 + len);
            }
        }
    });
    let body = || ReplyBody::accepted(AcceptStatus::Success);
    let mut batch = BytesMut::new();
    let mut next = 0x4000_0000u32;
    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        for _ in 0..BATCH {
            let xid = match flood {
                Flood::Replies => latest.load(Ordering::Relaxed),
                _ => {
                    next = next.wrapping_add(1);
                    next
                }
            };
            push_record(&mut batch, &Message::reply(xid, body(), Bytes::new()));
        }
        if writer.write_all(&batch).await.is_err() {
            return;
        }
    }
}
