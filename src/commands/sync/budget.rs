//! The bytes of file content held in memory at once, across every file in
//! flight: a small file's whole content, or one part of a large one. Many
//! files can be in flight (S3's latency, not memory, limits throughput), and
//! this budget keeps a run of large files from holding one buffer each.

use tokio::sync::{Semaphore, SemaphorePermit};

/// The budget is counted in KiB, so that one permit count covers terabytes.
const UNIT: u64 = 1024;

#[derive(Debug)]
pub struct MemoryBudget {
    semaphore: Semaphore,
    units: u32,
}

/// File content read into memory, and its share of the budget until dropped.
pub struct Held<'a> {
    pub bytes: Vec<u8>,
    pub share: SemaphorePermit<'a>,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        MemoryBudget {
            semaphore: Semaphore::new(units as usize),
            units,
        }
    }

    /// Waits until `bytes` more fit. A part larger than the whole budget (a
    /// file so large that its parts grew past it) takes all of it, and so
    /// runs alone.
    pub async fn reserve(&self, bytes: u64) -> SemaphorePermit<'_> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units);
        self.semaphore
            .acquire_many(units)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_until_the_bytes_fit() {
        let budget = MemoryBudget::new(10 * UNIT);
        let first = budget.reserve(6 * UNIT).await;
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            budget.reserve(6 * UNIT),
        );
        assert!(waiting.await.is_err(), "12 KiB fit in a budget of 10");
        drop(first);
        let _second = budget.reserve(6 * UNIT).await;
        // More than the whole budget takes all of it instead of waiting forever.
        drop(_second);
        let _all = tokio::time::timeout(std::time::Duration::from_secs(1), budget.reserve(1 << 40))
            .await
            .expect("a part larger than the budget runs alone");
    }
}
