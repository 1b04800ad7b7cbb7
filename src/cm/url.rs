//! The URL model (deep and mid CM frames, format 20 on; docs/MODEL.md, "URL model"). Inside a URL
//! (from the bytes `://` to the next byte at or below 32: a space, a control byte, a line break)
//! the next byte depends on the site as much as on the bytes just before it: one site's paths
//! share their directories, words and spelling. Four contexts key what the byte mixer already
//! sees by the URL's host: its current word, its path depth, its last two bytes, and its
//! directory. Outside a URL `SymbolCm` leaves them out: nothing is looked up or trained for them
//! and their inputs to the mixers are 0, which adds nothing and moves no weight, so data without
//! URLs is coded exactly as without the model.

use super::counter::fmix;

/// The contexts' hash outside a URL (where they are left out: never looked up).
const NO_URL: u32 = 0x5A5A_5A5A;

/// The state of the URL being read, if any.
#[derive(Clone, Copy, Debug, Default)]
pub struct Url {
    /// the hash of the host (the bytes between `://` and the next `/`), 0 outside a URL
    host: u32,
    /// whether the host is still being read
    in_host: bool,
    /// the hash of the URL's bytes since `://`
    path: u32,
    /// `path` when the last `/` after the host was read (0 before the first)
    dir: u32,
    /// the `/` read after the host
    slashes: u32,
    /// bytes read since the last `/` (or since `://`)
    since_slash: u32,
    /// the last three bytes (the latest lowest)
    recent: u32,
}

impl Url {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a URL is being read: its contexts are live.
    pub fn active(&self) -> bool {
        self.host != 0
    }

    /// Read the next byte.
    pub fn push(&mut self, b: u8) {
        self.recent = ((self.recent << 8) | b as u32) & 0xFF_FFFF;
        if b <= b' ' {
            *self = Url {
                recent: self.recent,
                ..Url::default()
            };
        } else if self.recent == u32::from_be_bytes([0, b':', b'/', b'/']) {
            *self = Url {
                host: 1,
                in_host: true,
                path: 1,
                recent: self.recent,
                ..Url::default()
            };
        } else if self.active() {
            self.path = fmix(self.path.wrapping_add(b as u32));
            if b == b'/' {
                self.in_host = false;
                self.slashes += 1;
                self.dir = self.path;
                self.since_slash = 0;
            } else {
                self.since_slash += 1;
                if self.in_host {
                    self.host = fmix(self.host.wrapping_add(b as u32)) | 1;
                }
            }
        }
    }

    /// The four contexts for the next byte, given the current word's hash, the last byte and the
    /// order-2 context's hash: host with word and last byte, host with path depth and word, host
    /// with the last two bytes, directory with the bytes since it.
    pub fn contexts(&self, word: u32, s1: u32, order2: u32) -> [u32; 4] {
        if !self.active() {
            return [NO_URL; 4];
        }
        let three = |a: u32, salt: u32, b: u32, c: u32| fmix(fmix(a ^ salt).wrapping_add(fmix(b).wrapping_add(c)));
        [
            three(self.host, 0x5151_5151, word, s1),
            three(self.host, 0x5353_5353, self.slashes, word),
            three(self.host, 0x5757_5151, order2, 0),
            three(self.dir, 0x5656_5151, self.since_slash, 0),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> Url {
        let mut u = Url::new();
        for &b in text {
            u.push(b);
        }
        u
    }

    /// A URL begins after `://` and ends at a space or a line break; its host ends at the first
    /// `/` after it.
    #[test]
    fn urls_are_found_in_text() {
        assert!(!read(b"GET /index.html").active());
        assert!(read(b"see http://example.com/a").active());
        assert!(!read(b"see http://example.com/a b").active());
        assert!(!read(b"http://example.com/a\n").active());
        let (a, b) = (read(b"http://example.com/docs/x"), read(b"ftp://example.com/pub/y/z"));
        assert_eq!(a.host, b.host, "the host is the same whatever the scheme and path");
        assert_ne!(a.host, read(b"http://example.org/docs/x").host);
        assert_eq!((a.slashes, b.slashes), (2, 3));
        assert_eq!(a.since_slash, 1);
        assert_eq!(
            a.dir,
            read(b"https://example.com/docs/").dir,
            "the directory counts the host"
        );
    }

    /// Outside a URL every context is the same constant, whatever came before.
    #[test]
    fn outside_a_url_the_contexts_are_constant() {
        for text in [&b""[..], b"plain text", b"http://x.org/a b", b"x:/ /"] {
            assert_eq!(read(text).contexts(7, 8, 9), [NO_URL; 4]);
        }
        let inside = read(b"http://x.org/a").contexts(7, 8, 9);
        assert!(inside.iter().all(|&h| h != NO_URL));
    }
}
