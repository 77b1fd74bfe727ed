//! The crate's one error type.
//!
//! These errors never become an HTTP response: a handler that returns one makes hyper drop the
//! connection, which is exactly what the `mock-fault-reset` and `mock-fault-midstream` faults need.
//! Everything a client should see as a status code is built as a response instead.

/// Why the mock dropped a connection instead of answering.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The client went away or sent a broken body.
    #[error("reading request body failed")]
    ReadBody(#[source] hyper::Error),
    /// A response value could not be written as JSON.
    #[error("encoding response json failed")]
    Encode(#[source] serde_json::Error),
    /// `mock-fault-reset` or the end of `mock-fault-hang`: close without answering.
    #[error("injected fault closed the connection")]
    InjectedClose,
    /// `mock-fault-midstream`: the body ends in the middle of an event.
    #[error("injected fault aborted the stream")]
    InjectedAbort,
}

/// Result alias used across the crate.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
