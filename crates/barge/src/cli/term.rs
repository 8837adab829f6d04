//! The terminal side of attach/exec/run: raw mode, window size, and pumping a hijacked
//! connection (stdin forwarding with detach keys, output raw with a TTY or demultiplexed).

use std::io::{Read, Write};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::client::Hijacked;
use super::error::Result;
use super::stream::{Demux, DetachScanner};

/// True when `fd` is a terminal.
pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The terminal size of `fd` as (rows, cols).
pub fn size(fd: i32) -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes a winsize into the zeroed struct we pass.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            Some((ws.ws_row, ws.ws_col))
        } else {
            None
        }
    }
}

/// Puts a terminal in raw mode; restores it on drop.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// Raw mode on `fd`, or None when it is not a terminal.
    pub fn enable(fd: i32) -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on a descriptor with termios structs we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved in enable.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// How a pumped session ended.
#[derive(Debug, PartialEq)]
pub enum PumpEnd {
    /// The output stream ended (the process exited or closed its output).
    Eof,
    /// The user typed the detach keys.
    Detached,
}

/// Reads stdin on a thread (a blocked read never holds up the runtime) into a channel.
fn stdin_channel() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 8192];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn write_out(stream: u8, data: &[u8]) {
    if stream == 2 || stream == 3 {
        let mut e = super::out::stderr();
        let _ = e.write_all(data);
        let _ = e.flush();
    } else {
        let mut o = super::out::stdout();
        let _ = o.write_all(data);
        let _ = o.flush();
    }
}

/// Pumps a hijacked connection until its output ends or the user detaches.
/// `tty`: the stream is raw (else multiplexed); `stdin`: forward our stdin, closing the write
/// half at its end; `detach`: the detach key sequence (empty: none).
pub async fn pump(h: Hijacked, tty: bool, stdin: bool, detach: Vec<u8>) -> Result<PumpEnd> {
    let (mut rd, mut wr) = tokio::io::split(h.stream);
    let mut demux = Demux::default();
    let emit = |demux: &mut Demux, data: &[u8]| {
        if tty {
            write_out(1, data);
        } else {
            for f in demux.push(data) {
                write_out(f.stream, &f.data);
            }
        }
    };
    if !h.leftover.is_empty() {
        emit(&mut demux, &h.leftover);
    }
    let output = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => emit(&mut demux, &buf[..n]),
            }
        }
    };
    let input = async {
        if !stdin {
            return std::future::pending::<PumpEnd>().await;
        }
        let mut rx = stdin_channel();
        let mut scan = DetachScanner::new(detach);
        while let Some(chunk) = rx.recv().await {
            let (fwd, detached) = scan.feed(&chunk);
            if !fwd.is_empty() && wr.write_all(&fwd).await.is_err() {
                break;
            }
            if detached {
                return PumpEnd::Detached;
            }
        }
        let _ = wr.shutdown().await;
        std::future::pending::<PumpEnd>().await
    };
    tokio::select! {
        _ = output => Ok(PumpEnd::Eof),
        end = input => Ok(end),
    }
}
