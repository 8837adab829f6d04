//! CLI errors and their exit codes (Docker's: 125 for the daemon or the CLI itself).

use std::fmt;

/// A CLI failure.
#[derive(Debug)]
pub enum Error {
    /// The daemon answered with an error status.
    Api {
        /// HTTP status.
        status: u16,
        /// The body's `message`.
        message: String,
    },
    /// No daemon answered.
    Connect(String),
    /// Bad flags or arguments.
    Usage(String),
    /// Anything else.
    Msg(String),
    /// Exit with this status and print nothing more (e.g. a container's exit code).
    Exit(i32),
    /// Print the message, exit with the status.
    Status(i32, String),
}

/// The CLI's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The process exit status for this error: docker's 1 for a failed command, 125 for bad
    /// flags (run/create map their failures to 125 themselves).
    pub fn code(&self) -> i32 {
        match self {
            Error::Exit(c) | Error::Status(c, _) => *c,
            Error::Usage(_) => 125,
            _ => 1,
        }
    }

    /// True when the daemon said 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { status: 404, .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api { message, .. } => write!(f, "Error response from daemon: {message}"),
            Error::Connect(m) | Error::Msg(m) | Error::Status(_, m) => write!(f, "{m}"),
            Error::Usage(m) => write!(f, "{m}"),
            Error::Exit(_) => Ok(()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Msg(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Msg(e.to_string())
    }
}
