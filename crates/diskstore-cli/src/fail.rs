//! The tool's error: one line that names the file, and the exit code it leads to.

use std::fmt;
use std::path::Path;

/// A failed command: printed as one line on stderr, then the process exits non-zero.
#[derive(Debug)]
pub struct Fail {
    message: String,
    /// The exit code (1 for failures, 2 for usage mistakes the parser could not catch).
    pub code: i32,
    /// True when the reader of our output went away (a closed pipe): exit quietly.
    pub quiet: bool,
}

/// The tool's result type.
pub type Outcome<T> = Result<T, Fail>;

impl Fail {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Fail {
        Fail {
            message: message.into(),
            code: 1,
            quiet: false,
        }
    }

    /// A mistake in the command line (exit code 2).
    pub fn usage(message: impl Into<String>) -> Fail {
        Fail {
            code: 2,
            ..Fail::new(message)
        }
    }

    /// A failure about `file`; the file name is put in front unless the message has it.
    pub fn at(file: &Path, message: impl fmt::Display) -> Fail {
        let message = message.to_string();
        let name = file.display().to_string();
        if message.contains(&name) {
            Fail::new(message)
        } else {
            Fail::new(format!("{name}: {message}"))
        }
    }

    /// Converts an engine error about `file`.
    pub fn engine(file: &Path, err: diskstore::Error) -> Fail {
        if let diskstore::Error::Io { source, .. } = &err
            && source.kind() == std::io::ErrorKind::BrokenPipe
        {
            return Fail::broken_pipe();
        }
        Fail::at(file, err)
    }

    /// Our reader closed the pipe (`diskstore ls f | head`): stop without a message.
    pub fn broken_pipe() -> Fail {
        Fail {
            message: String::new(),
            code: 0,
            quiet: true,
        }
    }

    /// Converts an error from writing our output.
    pub fn output(err: std::io::Error) -> Fail {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Fail::broken_pipe()
        } else {
            Fail::new(format!("cannot write output: {err}"))
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying error text contains.
        f.write_str(&self.message.replace('\n', " "))
    }
}

/// Turns an output write error into a [`diskstore::Error`] so it can leave an engine
/// closure (a read transaction, a scan) and be told apart afterwards.
pub fn io_to_engine(err: std::io::Error) -> diskstore::Error {
    diskstore::Error::Io {
        path: "<stdout>".into(),
        source: err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_is_added_once() {
        let p = Path::new("/tmp/x.db");
        assert_eq!(Fail::at(p, "bad").to_string(), "/tmp/x.db: bad");
        assert_eq!(
            Fail::at(p, "no such store file: /tmp/x.db").to_string(),
            "no such store file: /tmp/x.db"
        );
        assert_eq!(Fail::new("a\nb").to_string(), "a b");
    }
}
