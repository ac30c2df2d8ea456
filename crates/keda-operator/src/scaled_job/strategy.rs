//! The ScaledJob arithmetic of spec §5.2–§5.4 as pure functions: effective bounds, the
//! aggregation of several scalers into (queue length, max scale), and the four scaling
//! strategies deciding how many Jobs one poll creates. KEDA's source is followed where its docs
//! differ (spec §12).

use keda_api::ScaledJob;
use keda_api::rules::scaled_job::parse_go_float;
use keda_api::scaled_job::{MultipleScalersCalculation, ScalingStrategyKind};

/// `MinReplicaCount()` of §5.2: `min`, or `max` when `min > max`.
pub fn effective_min(sj: &ScaledJob) -> i64 {
    let min = i64::from(sj.spec.min_replica_count.unwrap_or(0));
    match sj.spec.max_replica_count {
        Some(max) if min > i64::from(max) => i64::from(max),
        _ => min,
    }
}

/// `MaxReplicaCount()` of §5.2: `max − min` when `max` is set (just `max` when `min > max`);
/// 100 when unset, not `100 − min`.
pub fn effective_max(sj: &ScaledJob) -> i64 {
    let min = i64::from(sj.spec.min_replica_count.unwrap_or(0));
    match sj.spec.max_replica_count {
        Some(max) if min > i64::from(max) => i64::from(max),
        Some(max) => i64::from(max) - min,
        None => i64::from(keda_api::scaled_object::DEFAULT_MAX_REPLICA_COUNT),
    }
}

/// What one scaler reported in a poll (§5.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalerReading {
    /// Sum of the values named like the scaler's first metric.
    pub queue: f64,
    /// Average of the specs' averageValue targets (0 when none).
    pub target: f64,
    pub active: bool,
}

impl ScalerReading {
    /// `q / t` capped at the effective max; 0 when there is no target.
    fn max_value(&self, max_rc: i64) -> f64 {
        if self.target == 0.0 {
            0.0
        } else {
            (self.queue / self.target).min(max_rc as f64)
        }
    }
}

/// The aggregate of one poll: jobs wanted (`scale_to`), the cap (`max_scale`), activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    pub is_active: bool,
    pub scale_to: i64,
    pub max_scale: i64,
}

/// Combines the scalers as `multipleScalersCalculation` says (§5.3).
pub fn aggregate(
    readings: &[ScalerReading],
    mode: Option<MultipleScalersCalculation>,
    min_rc: i64,
    max_rc: i64,
) -> Aggregate {
    let active: Vec<&ScalerReading> = readings.iter().filter(|r| r.active).collect();
    let (queue, max_value, mut is_active) = match mode.unwrap_or(MultipleScalersCalculation::Max) {
        MultipleScalersCalculation::Max => {
            // Selection needs q > 0: active scalers reporting 0 leave the job inactive.
            let mut best: Option<&ScalerReading> = None;
            for r in &active {
                if r.queue > best.map_or(0.0, |b| b.queue) {
                    best = Some(r);
                }
            }
            match best {
                Some(b) => (b.queue, b.max_value(max_rc), true),
                None => (0.0, 0.0, false),
            }
        }
        MultipleScalersCalculation::Min => {
            let mut best: Option<&ScalerReading> = None;
            for r in &active {
                if best.is_none_or(|b| r.queue < b.queue) {
                    best = Some(r);
                }
            }
            match best {
                Some(b) => (b.queue, b.max_value(max_rc), true),
                None => (0.0, 0.0, false),
            }
        }
        MultipleScalersCalculation::Avg | MultipleScalersCalculation::Sum => {
            if active.is_empty() {
                (0.0, 0.0, false)
            } else {
                let q: f64 = active.iter().map(|r| r.queue).sum();
                let m: f64 = active.iter().map(|r| r.max_value(max_rc)).sum();
                if mode == Some(MultipleScalersCalculation::Avg) {
                    let n = active.len() as f64;
                    (q / n, m / n, true)
                } else {
                    (q, m, true)
                }
            }
        }
    };
    if min_rc > 0 {
        is_active = true;
    }
    let max_value = max_value.min(max_rc as f64);
    Aggregate {
        is_active,
        scale_to: ceil_to_i64(queue),
        max_scale: ceil_to_i64(max_value),
    }
}

fn ceil_to_i64(v: f64) -> i64 {
    if v.is_nan() {
        0
    } else {
        // Saturating: `as` clamps out-of-range floats.
        v.ceil() as i64
    }
}

/// The strategy in force: `custom` silently becomes `default` when its percentage does not
/// parse as a float (an empty or missing one included), as KEDA does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Default,
    Custom { deduction: i64, percentage: f64 },
    Accurate,
    Eager,
}

impl Strategy {
    pub fn of(sj: &ScaledJob) -> Self {
        let Some(s) = sj.spec.scaling_strategy.as_ref() else {
            return Self::Default;
        };
        match s.strategy {
            None | Some(ScalingStrategyKind::Default) => Self::Default,
            Some(ScalingStrategyKind::Accurate) => Self::Accurate,
            Some(ScalingStrategyKind::Eager) => Self::Eager,
            Some(ScalingStrategyKind::Custom) => {
                match s
                    .custom_scaling_running_job_percentage
                    .as_deref()
                    .and_then(parse_go_float)
                {
                    Some(percentage) => Self::Custom {
                        deduction: i64::from(s.custom_scaling_queue_length_deduction.unwrap_or(0)),
                        percentage,
                    },
                    None => Self::Default,
                }
            }
        }
    }
}

/// Counts of the ScaledJob's unfinished Jobs (§5.4); `pending` is a subset of `running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobCounts {
    pub running: i64,
    pub pending: i64,
}

/// How many Jobs this poll creates (§5.4): 0 when inactive.
pub fn jobs_to_create(
    strategy: Strategy,
    agg: Aggregate,
    counts: JobCounts,
    min_rc: i64,
    max_rc: i64,
) -> i64 {
    let (effective, scale_to) = decision(strategy, agg, counts, min_rc, max_rc);
    let effective = effective.max(0);
    if !agg.is_active || effective == 0 {
        return 0;
    }
    scale_to.min(effective).max(0)
}

/// (effectiveMaxScale, scaleTo) before the clamp.
pub fn decision(
    strategy: Strategy,
    agg: Aggregate,
    counts: JobCounts,
    min_rc: i64,
    max_rc: i64,
) -> (i64, i64) {
    let JobCounts { running, pending } = counts;
    if running < min_rc {
        let n = min_rc - running;
        return (n, n);
    }
    let r = running - min_rc;
    let max_scale = agg.max_scale;
    let scale_to = agg.scale_to;
    match strategy {
        Strategy::Default => (max_scale - r, scale_to),
        Strategy::Custom {
            deduction,
            percentage,
        } => {
            // Go's int64(float) truncates toward zero.
            let running_part = (r as f64 * percentage).trunc() as i64;
            ((max_scale - deduction - running_part).min(max_rc), scale_to)
        }
        Strategy::Accurate => {
            if max_scale + r - pending > max_rc {
                (max_rc - r, scale_to)
            } else {
                (max_scale - pending, scale_to)
            }
        }
        Strategy::Eager => ((max_rc - r - pending).min(max_scale), max_rc),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use keda_api::scaled_job::ScalingStrategy;

    fn agg(scale_to: i64, max_scale: i64) -> Aggregate {
        Aggregate {
            is_active: true,
            scale_to,
            max_scale,
        }
    }
    fn counts(running: i64, pending: i64) -> JobCounts {
        JobCounts { running, pending }
    }
    fn sj(min: Option<i32>, max: Option<i32>) -> ScaledJob {
        let mut sj = ScaledJob::new("j", Default::default());
        sj.spec.min_replica_count = min;
        sj.spec.max_replica_count = max;
        sj
    }

    #[test]
    fn effective_bounds() {
        // (min, max) → (MinRC, MaxRC)
        let table = [
            (None, None, 0, 100),
            (Some(2), None, 2, 100), // unset max stays 100, not 100 − min
            (Some(2), Some(10), 2, 8),
            (Some(0), Some(5), 0, 5),
            (Some(7), Some(5), 5, 5), // min > max: both become max
        ];
        for (min, max, emin, emax) in table {
            let j = sj(min, max);
            assert_eq!(
                (effective_min(&j), effective_max(&j)),
                (emin, emax),
                "{min:?}/{max:?}"
            );
        }
    }

    #[test]
    fn strategy_table() {
        use Strategy::*;
        let custom = Custom {
            deduction: 1,
            percentage: 0.5,
        };
        // (strategy, scaleTo, maxScale, running, pending, minRC, maxRC, jobs created)
        type Row = (Strategy, i64, i64, i64, i64, i64, i64, i64);
        let table: &[Row] = &[
            // default: maxScale − running, capped by queue
            (Default, 10, 5, 0, 0, 0, 5, 5),
            (Default, 10, 5, 3, 0, 0, 5, 2),
            (Default, 2, 5, 0, 0, 0, 5, 2),
            (Default, 10, 5, 5, 5, 0, 5, 0),
            // pending jobs are unfinished, so default already counts them as running
            (Default, 1, 1, 1, 1, 0, 5, 0),
            // custom: maxScale − deduction − trunc(running × pct), ≤ MaxRC
            (custom, 10, 10, 4, 0, 0, 10, 7),
            (custom, 10, 10, 3, 0, 0, 10, 8), // 3 × 0.5 = 1.5 → 1
            (custom, 10, 10, 0, 0, 0, 4, 4),  // capped by MaxRC
            // accurate (source): maxScale + r − pending > MaxRC ⇒ MaxRC − r, else maxScale − pending
            (Accurate, 3, 3, 0, 0, 0, 10, 3),
            (Accurate, 1, 1, 1, 1, 0, 5, 0), // one pending job for one item: no duplicate
            (Accurate, 8, 8, 4, 0, 0, 10, 6), // 8 + 4 > 10 ⇒ 10 − 4
            // docs say maxScale + running > MaxRC ⇒ 10 − 4 = 6; the source subtracts pending
            // first (8 + 4 − 3 = 9 ≤ 10) ⇒ maxScale − pending = 5
            (Accurate, 8, 8, 4, 3, 0, 10, 5),
            // eager: min(MaxRC − r − pending, maxScale), scaleTo = MaxRC
            (Eager, 3, 3, 0, 0, 0, 10, 3),
            (Eager, 5, 5, 5, 5, 0, 5, 0),
            // the source's eager still adds a Job while one sits pending for a lone item
            (Eager, 1, 1, 1, 1, 0, 5, 1),
            (Eager, 1, 1, 2, 2, 0, 5, 1),
            (Eager, 1, 1, 3, 3, 0, 5, 0),
            (Eager, 2, 10, 2, 0, 0, 10, 8), // scaleTo is MaxRC, not the queue
            // below minReplicaCount: top up to min whatever the strategy
            (Default, 0, 0, 1, 0, 3, 10, 2),
            (Eager, 0, 0, 0, 0, 2, 10, 2),
            // min jobs are not counted against the strategy: r = running − min
            (Default, 10, 5, 4, 0, 2, 8, 3),
        ];
        for &(s, scale_to, max_scale, running, pending, min_rc, max_rc, want) in table {
            let mut a = agg(scale_to, max_scale);
            a.is_active = true;
            assert_eq!(
                jobs_to_create(s, a, counts(running, pending), min_rc, max_rc),
                want,
                "{s:?} scaleTo={scale_to} maxScale={max_scale} running={running} pending={pending} min={min_rc} max={max_rc}"
            );
        }
    }

    #[test]
    fn inactive_creates_nothing() {
        let mut a = agg(5, 5);
        a.is_active = false;
        assert_eq!(jobs_to_create(Strategy::Default, a, counts(0, 0), 0, 5), 0);
    }

    #[test]
    fn custom_without_parsable_percentage_is_default() {
        for pct in [None, Some(""), Some("abc"), Some(" 0.5"), Some("50%")] {
            let mut j = sj(None, Some(10));
            j.spec.scaling_strategy = Some(ScalingStrategy {
                strategy: Some(ScalingStrategyKind::Custom),
                custom_scaling_queue_length_deduction: Some(3),
                custom_scaling_running_job_percentage: pct.map(str::to_string),
                ..Default::default()
            });
            assert_eq!(Strategy::of(&j), Strategy::Default, "{pct:?}");
            // and it computes like default: 5 − 2 running = 3 (custom would give 5 − 3 − 1 = 1)
            assert_eq!(
                jobs_to_create(Strategy::of(&j), agg(10, 5), counts(2, 0), 0, 10),
                3
            );
        }
        let mut j = sj(None, Some(10));
        j.spec.scaling_strategy = Some(ScalingStrategy {
            strategy: Some(ScalingStrategyKind::Custom),
            custom_scaling_running_job_percentage: Some("0.5".into()),
            ..Default::default()
        });
        assert_eq!(
            Strategy::of(&j),
            Strategy::Custom {
                deduction: 0,
                percentage: 0.5
            }
        );
    }

    fn reading(queue: f64, target: f64, active: bool) -> ScalerReading {
        ScalerReading {
            queue,
            target,
            active,
        }
    }

    #[test]
    fn aggregation_modes() {
        use MultipleScalersCalculation::*;
        let rs = [
            reading(10.0, 5.0, true), // m = 2
            reading(3.0, 1.0, true),  // m = 3
            reading(50.0, 1.0, false),
        ];
        let a = aggregate(&rs, None, 0, 100);
        assert_eq!((a.is_active, a.scale_to, a.max_scale), (true, 10, 2));
        let a = aggregate(&rs, Some(Min), 0, 100);
        assert_eq!((a.is_active, a.scale_to, a.max_scale), (true, 3, 3));
        let a = aggregate(&rs, Some(Avg), 0, 100);
        assert_eq!((a.is_active, a.scale_to, a.max_scale), (true, 7, 3)); // 6.5→7, 2.5→3
        let a = aggregate(&rs, Some(Sum), 0, 100);
        assert_eq!((a.is_active, a.scale_to, a.max_scale), (true, 13, 5));
        // maxScale is the float q/t capped then rounded up once
        let a = aggregate(&[reading(11.0, 5.0, true)], None, 0, 100);
        assert_eq!(a.max_scale, 3);
        let a = aggregate(&[reading(60.0, 5.0, true)], None, 0, 5);
        assert_eq!((a.scale_to, a.max_scale), (60, 5));
    }

    #[test]
    fn max_mode_needs_a_positive_queue() {
        let a = aggregate(&[reading(0.0, 5.0, true)], None, 0, 100);
        assert!(!a.is_active);
        let a = aggregate(
            &[reading(0.0, 5.0, true)],
            Some(MultipleScalersCalculation::Sum),
            0,
            100,
        );
        assert!(a.is_active);
        // minReplicaCount > 0 is always active
        let a = aggregate(&[reading(0.0, 5.0, false)], None, 1, 100);
        assert!(a.is_active);
        // no target: m = 0
        let a = aggregate(&[reading(4.0, 0.0, true)], None, 0, 100);
        assert_eq!((a.scale_to, a.max_scale), (4, 0));
    }

    proptest::proptest! {
        #[test]
        fn never_above_max_and_never_negative(
            scale_to in 0i64..1000, max_scale in 0i64..1000, running in 0i64..200,
            pending_frac in 0i64..=100, min_rc in 0i64..20, max_rc in 1i64..200, kind in 0u8..4,
        ) {
            let pending = running * pending_frac / 100;
            let s = match kind {
                0 => Strategy::Default,
                1 => Strategy::Custom { deduction: 0, percentage: 1.0 },
                2 => Strategy::Accurate,
                _ => Strategy::Eager,
            };
            let max_scale = max_scale.min(max_rc);
            let n = jobs_to_create(s, agg(scale_to, max_scale), counts(running, pending), min_rc, max_rc);
            proptest::prop_assert!(n >= 0);
            // Above min, no strategy lets the unfinished jobs (beyond min) exceed MaxRC; below
            // min, exactly the missing ones are created.
            if running >= min_rc {
                proptest::prop_assert!(running - min_rc + n <= max_rc.max(running - min_rc));
            } else {
                proptest::prop_assert_eq!(n, min_rc - running);
            }
        }
    }
}
