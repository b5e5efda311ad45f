//! A run's file records on disk instead of in memory: each is written as
//! its file finishes, in whatever order files finish, and read back sorted
//! by local path (the manifest's order) by an external merge sort. Memory
//! then holds at most one run of records while sorting, and one record per
//! run while merging, however many files the tree has.
//!
//! The spool and its sorted runs are compressed on the way to disk (zlib
//! at its fastest level, about a sixth of the JSON): they live in the
//! manifest directory, which under Lambda is a `/tmp` of 512 MB by default,
//! and a million records of JSON would take most of it twice.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use super::FileRecord;
use super::summary::Tally;
use crate::error::{Error, Result};

/// Records sorted in memory at once, per run of the merge sort.
const RUN_RECORDS: usize = 20_000;

/// Records as they finish, one JSON line each, in an unnamed file.
pub struct RecordSpool {
    out: BufWriter<ZlibEncoder<File>>,
    dir: std::path::PathBuf,
    tally: Tally,
}

impl RecordSpool {
    /// A spool in `dir` (the manifest directory: private, and where the
    /// manifest will be written anyway).
    pub fn new(dir: &Path) -> Result<Self> {
        let file =
            tempfile::tempfile_in(dir).map_err(|err| Error::io("create a spool in", dir, err))?;
        Ok(RecordSpool {
            out: compressing(file),
            dir: dir.to_path_buf(),
            tally: Tally::default(),
        })
    }

    pub fn push(&mut self, record: &FileRecord) -> Result<()> {
        self.tally.add(record);
        serde_json::to_writer(&mut self.out, record)?;
        self.out
            .write_all(b"\n")
            .map_err(|err| Error::io("write the spool in", &self.dir, err))
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Sorts what was pushed into runs of `RUN_RECORDS`, ready to be read
    /// in order, as often as needed.
    pub fn sort(self) -> Result<SortedRecords> {
        let io = |err| Error::io("sort the spool in", &self.dir, err);
        let mut spooled = finished(self.out).map_err(io)?;
        spooled.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut runs = Vec::new();
        let mut lines = decompressing(spooled).lines();
        loop {
            let mut run: Vec<(String, String)> = Vec::with_capacity(RUN_RECORDS);
            for line in lines.by_ref().take(RUN_RECORDS) {
                let line = line.map_err(io)?;
                run.push((sort_key(&line)?, line));
            }
            if run.is_empty() {
                break;
            }
            run.sort_unstable();
            let mut out = compressing(tempfile::tempfile_in(&self.dir).map_err(io)?);
            for (_, line) in &run {
                out.write_all(line.as_bytes()).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            }
            runs.push(finished(out).map_err(io)?);
        }
        Ok(SortedRecords {
            runs,
            dir: self.dir,
        })
    }
}

/// The manifest's order: by local path, as the record serialises it.
fn sort_key(line: &str) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Key {
        local_path: String,
    }
    Ok(serde_json::from_str::<Key>(line)?.local_path)
}

/// Sorted runs of records on disk.
pub struct SortedRecords {
    runs: Vec<File>,
    dir: std::path::PathBuf,
}

impl SortedRecords {
    /// Every record, in the manifest's order, merged from the runs.
    pub fn iter(&self) -> Result<impl Iterator<Item = Result<FileRecord>> + '_> {
        let io = |err| Error::io("read the spool in", &self.dir, err);
        let mut readers = Vec::with_capacity(self.runs.len());
        for run in &self.runs {
            let mut run = run.try_clone().map_err(io)?;
            run.seek(SeekFrom::Start(0)).map_err(io)?;
            readers.push(decompressing(run).lines());
        }
        let mut heads = BinaryHeap::new();
        for (index, reader) in readers.iter_mut().enumerate() {
            if let Some(line) = reader.next() {
                let line = line.map_err(io)?;
                heads.push(Reverse((sort_key(&line)?, index, line)));
            }
        }
        Ok(Merge {
            readers,
            heads,
            dir: &self.dir,
        })
    }
}

fn compressing(file: File) -> BufWriter<ZlibEncoder<File>> {
    BufWriter::new(ZlibEncoder::new(file, Compression::fast()))
}

/// The file under a compressing writer, every byte written to it.
fn finished(out: BufWriter<ZlibEncoder<File>>) -> std::io::Result<File> {
    out.into_inner().map_err(|err| err.into_error())?.finish()
}

fn decompressing(file: File) -> BufReader<ZlibDecoder<File>> {
    BufReader::new(ZlibDecoder::new(file))
}

struct Merge<'a> {
    readers: Vec<std::io::Lines<BufReader<ZlibDecoder<File>>>>,
    heads: BinaryHeap<Reverse<(String, usize, String)>>,
    dir: &'a Path,
}

impl Iterator for Merge<'_> {
    type Item = Result<FileRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((_, index, line)) = self.heads.pop()?;
        match self.readers[index].next() {
            Some(Ok(next)) => match sort_key(&next) {
                Ok(key) => self.heads.push(Reverse((key, index, next))),
                Err(err) => return Some(Err(err)),
            },
            Some(Err(err)) => return Some(Err(Error::io("read the spool in", self.dir, err))),
            None => {}
        }
        Some(serde_json::from_str(&line).map_err(Error::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_sorted_across_runs_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = RecordSpool::new(dir.path()).unwrap();
        // More than two runs, pushed in an order far from sorted.
        let total = RUN_RECORDS * 2 + 7;
        for i in 0..total {
            let n = (i * 7919) % total;
            let mut record = FileRecord::new(Path::new(&format!("/src/f{n:06}")), n as u64);
            record.status = crate::manifest::FileStatus::Skipped;
            spool.push(&record).unwrap();
        }
        assert_eq!(spool.tally().skipped, total as u64);
        let sorted = spool.sort().unwrap();
        for _pass in 0..2 {
            let paths: Vec<String> = sorted
                .iter()
                .unwrap()
                .map(|r| r.unwrap().local_path)
                .collect();
            assert_eq!(paths.len(), total);
            assert!(paths.windows(2).all(|w| w[0] < w[1]), "out of order");
        }
        // The spool and the runs are unnamed files: nothing is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
