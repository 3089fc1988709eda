//! How a userspace command fails: the kind is its exit code.

/// Why a command did not do its work; the kind is the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The command line is wrong (unknown option, an option the command does not take, a
    /// missing or extra argument, not a slot): exit 2, nothing was touched.
    Usage(String),
    /// The state or the image was refused, or could not be read or written: exit 1.
    Refused(String),
}

impl CliError {
    pub fn code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Refused(_) => 1,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            CliError::Usage(t) | CliError::Refused(t) => t,
        }
    }
}
