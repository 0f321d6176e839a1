//! The one lock-poisoning policy of perfpilot: a poisoned lock is recovered, not
//! propagated.
//!
//! Every critical section under these locks leaves its data consistent at each step (a
//! history append fills one slot, a map insert is whole), so what a panicking holder left
//! behind is still valid data. A panic is a bug: it is logged where it happens, and a task
//! it kills shows in `/readyz` and on the cards; it must not turn every later reader into a
//! second panic. Use these instead of `.lock().unwrap()`/`.expect()`.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
