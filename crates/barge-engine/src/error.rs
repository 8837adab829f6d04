//! Engine errors, each mapping to one Docker API status code.

/// An engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container, image or exec instance (404).
    #[error("{0}")]
    NotFound(String),
    /// A name is taken, or an operation conflicts with the state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing to do: already in the asked state (304).
    #[error("{0}")]
    NotModified(String),
    /// Not implemented yet (501).
    #[error("{0}")]
    NotImplemented(String),
    /// An image store error.
    #[error(transparent)]
    Image(#[from] barge_image::Error),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status code Docker answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::BadRequest(_) => 400,
            Error::NotModified(_) => 304,
            Error::NotImplemented(_) => 501,
            Error::Image(e) => match e {
                barge_image::Error::ImageNotFound(_) => 404,
                barge_image::Error::Reference(_) => 400,
                barge_image::Error::AmbiguousImage(_) => 400,
                barge_image::Error::ImageInUse { .. } => 409,
                barge_image::Error::Archive { .. } | barge_image::Error::Unpack { .. } => 400,
                _ => 500,
            },
            Error::Internal(_) => 500,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;
