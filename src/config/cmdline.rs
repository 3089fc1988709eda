//! Tokenizer shared by the kernel command line and the board config file, so that both speak the
//! same `key=value` language (one parser, one set of keys).

use crate::rt::prelude::*;

/// Text from bytes that should be UTF-8 (the command line, the config file): one stray byte must
/// not cost the whole text, so invalid bytes become U+FFFD and the warning names the first one.
pub fn decode(bytes: &[u8], what: &str) -> (String, Option<String>) {
    match core::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(e) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(format!(
                "{what}: byte {:#04x} at offset {} is not UTF-8; read with invalid bytes replaced",
                bytes[e.valid_up_to()],
                e.valid_up_to()
            )),
        ),
    }
}

/// One `key` or `key=value` word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    pub key: &'a str,
    pub value: Option<String>,
}

/// The words of a command line, split at the first bare `--`: what follows goes to the real init.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Words<'a> {
    pub params: Vec<Param<'a>>,
    pub init_args: Vec<String>,
}

/// Splits like the kernel's `next_arg()`: whitespace separates words, double quotes group spaces
/// (`key="a b"`), and the quotes themselves are dropped from the value.
pub fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    words.push(&text[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words
}

/// Parses a kernel command line (or one config line) into parameters and init arguments.
pub fn parse(text: &str) -> Words<'_> {
    let mut out = Words::default();
    let mut words = split_words(text).into_iter();
    for word in words.by_ref() {
        if word == "--" {
            break;
        }
        out.params.push(param(word));
    }
    out.init_args = words.map(|w| w.replace('"', "")).collect();
    out
}

fn param(word: &str) -> Param<'_> {
    match word.split_once('=') {
        Some((key, value)) => Param { key: key.trim_matches('"'), value: Some(value.replace('"', "")) },
        None => Param { key: word.trim_matches('"'), value: None },
    }
}

/// Parses the board config file: `key=value` words, any number per line, `#` starts a comment.
/// Returns each parameter with its 1-based line number for error messages.
pub fn parse_config(text: &str) -> Vec<(usize, Param<'_>)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        out.extend(parse(line).params.into_iter().map(|p| (n + 1, p)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quotes_and_init_args() {
        let w = parse("console=ttyS0 root=PARTLABEL=rootfs oinit.dataflags=\"nodev, noatime\" rootwait -- single -x");
        assert_eq!(w.params.len(), 4);
        assert_eq!(w.params[1], Param { key: "root", value: Some("PARTLABEL=rootfs".into()) });
        assert_eq!(w.params[2].value.as_deref(), Some("nodev, noatime"));
        assert_eq!(w.params[3], Param { key: "rootwait", value: None });
        assert_eq!(w.init_args, vec!["single", "-x"]);
    }

    #[test]
    fn a_stray_byte_keeps_the_rest_of_the_line() {
        let (text, warning) = decode(b"root=PARTLABEL=rootfs x=\xff oinit.data=LABEL=data", "/proc/cmdline");
        assert_eq!(
            warning.as_deref(),
            Some("/proc/cmdline: byte 0xff at offset 24 is not UTF-8; read with invalid bytes replaced")
        );
        let w = parse(&text);
        assert_eq!(w.params[0].value.as_deref(), Some("PARTLABEL=rootfs"));
        assert_eq!(w.params[2].value.as_deref(), Some("LABEL=data"));
        assert_eq!(decode(b"ro", "x"), ("ro".to_string(), None));
    }

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(parse("  \n\t "), Words::default());
        assert_eq!(parse("ro\n").params, vec![Param { key: "ro", value: None }]);
    }

    #[test]
    fn config_comments_and_lines() {
        let c = parse_config("# board\noinit.data=LABEL=data  # the data\n\noinit.modules=ext4,loop\n");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, 2);
        assert_eq!(c[1], (4, Param { key: "oinit.modules", value: Some("ext4,loop".into()) }));
    }
}
