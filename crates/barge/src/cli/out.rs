//! The CLI's output: stdout and stderr writers on which a closed pipe ends the process quietly.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader has gone (`barge ps | head -1`)
//! returns EPIPE, and `println!` panics on it. The docker CLI (Go) dies of SIGPIPE when its
//! stdout or stderr is such a pipe, silently, and the shell sees 128 + 13; barge does the same,
//! but only for these two descriptors: a write to the daemon's socket must stay an error.
//! Every print path of the CLI, and of the runc front end (`barge-runc`, runc.rs), goes
//! through [`stdout`], [`stderr`] or the `outln!`/`out!`/`errln!` macros.

use std::io::{self, Write};

/// Ends the process as a write to a closed pipe would end a program that kept SIGPIPE's
/// default action: killed by the signal, with nothing printed.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: restoring a signal's default action and raising it for this process; nothing
    // runs after, and `_exit` below is only reached if the signal somehow did not end us.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
        libc::_exit(128 + libc::SIGPIPE)
    }
}

/// Passes `r` on, ending the process quietly instead when it is a broken pipe.
fn check<T>(r: io::Result<T>) -> io::Result<T> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => die_of_sigpipe(),
        r => r,
    }
}

/// A locked stdout or stderr whose writes end the process on a broken pipe.
pub struct Out<W: Write>(W);

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        check(self.0.write(buf))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        check(self.0.write_all(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        check(self.0.flush())
    }
}

/// The locked stdout.
pub fn stdout() -> Out<io::StdoutLock<'static>> {
    Out(io::stdout().lock())
}

/// The locked stderr.
pub fn stderr() -> Out<io::StderrLock<'static>> {
    Out(io::stderr().lock())
}

/// Writes formatted text to stdout (the `out!`/`outln!` macros). Other write errors (a full
/// disk behind a redirection) are not the CLI's to report mid-output: they are dropped, as
/// Go's fmt.Print drops them.
pub fn print(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut o = stdout();
    let _ = o.write_fmt(args);
    if newline {
        let _ = o.write_all(b"\n");
    }
}

/// Writes formatted text to stderr (the `err!`/`errln!` macros).
pub fn eprint(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut e = stderr();
    let _ = e.write_fmt(args);
    if newline {
        let _ = e.write_all(b"\n");
    }
}

/// `println!` through [`print`].
macro_rules! outln {
    () => { $crate::cli::out::print(format_args!(""), true) };
    ($($t:tt)*) => { $crate::cli::out::print(format_args!($($t)*), true) };
}

/// `print!` through [`print`].
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::out::print(format_args!($($t)*), false) };
}

/// `eprintln!` through [`eprint`].
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::out::eprint(format_args!($($t)*), true) };
}

/// `eprint!` through [`eprint`].
macro_rules! err {
    ($($t:tt)*) => { $crate::cli::out::eprint(format_args!($($t)*), false) };
}

pub(crate) use {err, errln, out, outln};
