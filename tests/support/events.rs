//! The drivers' `tracing` events, captured for the whole test binary: a global subscriber
//! (events come from the drivers' own threads and tasks, which a thread's default would not
//! see) writing every event at `DEBUG` and above as a line of text. Tests of one binary share
//! it: each looks at the lines naming its own server or file.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// Every event line written so far, once capturing has begun.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<u8>>>);

impl Events {
    /// The lines holding every one of `texts`.
    pub fn lines_with(&self, texts: &[&str]) -> Vec<String> {
        let written = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&written)
            .lines()
            .filter(|line| texts.iter().all(|text| line.contains(text)))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Events {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut written = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        written.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Events {
    type Writer = Events;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The binary's captured events, capturing from the first call on.
pub fn captured() -> &'static Events {
    static EVENTS: OnceLock<Events> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let events = Events::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(events.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        events
    })
}
