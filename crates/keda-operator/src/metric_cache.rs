//! The last value of every external metric, written by the scale loop and read by the
//! external-metrics API, so an HPA read never waits on a backend.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub at: SystemTime,
}

/// (namespace, scaledobject) → lowercase metric name → sample.
#[derive(Default)]
pub struct MetricCache {
    objects: RwLock<HashMap<(String, String), HashMap<String, Sample>>>,
}

impl MetricCache {
    pub fn store(&self, namespace: &str, object: &str, metric: &str, value: f64) {
        if let Ok(mut objects) = self.objects.write() {
            objects
                .entry((namespace.to_string(), object.to_string()))
                .or_default()
                .insert(
                    metric.to_lowercase(),
                    Sample {
                        value,
                        at: SystemTime::now(),
                    },
                );
        }
    }

    /// The value of `metric` when it is younger than `max_age`.
    pub fn fresh(
        &self,
        namespace: &str,
        object: &str,
        metric: &str,
        max_age: Duration,
    ) -> Option<Sample> {
        let objects = self.objects.read().ok()?;
        let sample = *objects
            .get(&(namespace.to_string(), object.to_string()))?
            .get(&metric.to_lowercase())?;
        let age = SystemTime::now()
            .duration_since(sample.at)
            .unwrap_or_default();
        (age <= max_age).then_some(sample)
    }

    pub fn remove_object(&self, namespace: &str, object: &str) {
        if let Ok(mut objects) = self.objects.write() {
            objects.remove(&(namespace.to_string(), object.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_age_matters() {
        let cache = MetricCache::default();
        cache.store("ns", "so", "s0-redis-Jobs", 7.0);
        let s = cache
            .fresh("ns", "so", "S0-REDIS-JOBS", Duration::from_secs(5))
            .map(|s| s.value);
        assert_eq!(s, Some(7.0));
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            cache
                .fresh("ns", "so", "s0-redis-jobs", Duration::from_millis(10))
                .is_none()
        );
        cache.remove_object("ns", "so");
        assert!(
            cache
                .fresh("ns", "so", "s0-redis-jobs", Duration::from_secs(5))
                .is_none()
        );
    }
}
