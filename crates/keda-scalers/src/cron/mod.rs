//! `cron`: `desiredReplicas` while inside a window that opens at each `start` and closes at the next
//! `end`, both five-field cron schedules read in `timezone`. No backend; the clock is a parameter of
//! [`CronScaler::activity_at`] so windows are tested with fixed instants.

pub mod schedule;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::ScalerMetadata;
use crate::config::{MetricTargetKind, ScalerConfig};
use crate::error::{BackendError, ConnectError, ScalerError};
use crate::kind::{Descriptor, Example, Reading, ScalerKind};
use crate::metrics::{MetricSpec, MetricTarget, normalized_metric_name};
use crate::params::{FromParams, MetadataParser, ParamInfo};
use crate::pools::Pools;
use schedule::Schedule;

const EXAMPLE: Example = Example::new(
    &[
        ("timezone", "Etc/UTC"),
        ("start", "0 6 * * *"),
        ("end", "0 20 * * *"),
        ("desiredReplicas", "3"),
    ],
    &["timezone", "start", "end", "desiredReplicas"],
);

/// `cron`.
pub static DESCRIPTOR: Descriptor = Descriptor::new::<CronScaler>("cron", EXAMPLE);

/// Parsed cron trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct CronMetadata {
    /// IANA zone name; resolved when polled, as KEDA does.
    pub timezone: String,
    /// `start` as written.
    pub start: String,
    /// `end` as written.
    pub end: String,
    /// `desiredReplicas` (non-zero).
    pub desired_replicas: i64,
    /// From the trigger's `metricType`.
    pub metric_type: MetricTargetKind,
    start_schedule: Schedule,
    end_schedule: Schedule,
}

/// The trigger's parameters.
#[derive(Debug, ScalerMetadata)]
struct CronParams {
    #[param(name = "timezone")]
    timezone: String,
    #[param(name = "start")]
    start: String,
    #[param(name = "end")]
    end: String,
    #[param(name = "desiredReplicas")]
    desired_replicas: i64,
}

/// Parses a cron trigger without I/O.
pub fn parse(config: &ScalerConfig) -> Result<CronMetadata, ScalerError> {
    let metric_type = config.external_metric_type()?;
    let mut p = MetadataParser::new(config);
    let CronParams {
        timezone,
        start,
        end,
        desired_replicas,
    } = CronParams::from_params(&mut p);
    let schedule = |p: &mut MetadataParser<'_>, name: &'static str, expr: &str| {
        if expr.is_empty() {
            return None;
        }
        Schedule::parse(expr)
            .map_err(|e| p.error(name, format!("error parsing {name} schedule: {e}")))
            .ok()
    };
    let start_schedule = schedule(&mut p, "start", &start);
    let end_schedule = schedule(&mut p, "end", &end);
    if !start.is_empty() && start == end {
        p.error("end", "start and end can not have exactly same time input");
    }
    if desired_replicas == 0 && !p.has_errors() {
        p.error("desiredReplicas", "no desiredReplicas specified");
    }
    p.finish()?;
    let (Some(start_schedule), Some(end_schedule)) = (start_schedule, end_schedule) else {
        return Err(ScalerError::config(
            config.trigger_label(),
            "start",
            "missing start or end schedule",
        ));
    };
    Ok(CronMetadata {
        timezone,
        start,
        end,
        desired_replicas,
        metric_type,
        start_schedule,
        end_schedule,
    })
}

/// `x` for `*`, `Sl` for `/`, `Qm` for `?`, `Cm` for `,`, spaces removed: the metric-name form.
fn name_part(schedule: &str) -> String {
    schedule
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '*' => "x".to_owned(),
            '/' => "Sl".to_owned(),
            '?' => "Qm".to_owned(),
            ',' => "Cm".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A cron trigger: pure configuration; the clock is read at each poll.
#[derive(Debug)]
pub struct CronScaler {
    trigger: String,
    metadata: CronMetadata,
}

impl CronScaler {
    /// Parses `config`.
    pub fn new(config: &ScalerConfig) -> Result<Self, ScalerError> {
        Ok(Self {
            trigger: config.trigger_label(),
            metadata: parse(config)?,
        })
    }

    /// The parsed trigger.
    pub fn metadata(&self) -> &CronMetadata {
        &self.metadata
    }

    /// Whether `now` is inside a window: the next end comes no later than the next start.
    pub fn activity_at(&self, now: Timestamp) -> Result<bool, ScalerError> {
        let tz = TimeZone::get(&self.metadata.timezone).map_err(|e| {
            ScalerError::config(
                &self.trigger,
                "timezone",
                format!("unable to load timezone: {e}"),
            )
        })?;
        let next = |schedule: &Schedule, which: &str| {
            schedule.next_after(now, &tz).ok_or_else(|| {
                ScalerError::backend(
                    &self.trigger,
                    crate::error::BackendKind::Protocol,
                    format!("the {which} schedule has no next time"),
                )
            })
        };
        let start = next(&self.metadata.start_schedule, "start")?;
        let end = next(&self.metadata.end_schedule, "end")?;
        Ok(end <= start)
    }

    /// The metric value at `now`: `desiredReplicas` inside a window, 0 outside.
    pub fn value_at(&self, now: Timestamp) -> Result<(f64, bool), ScalerError> {
        let active = self.activity_at(now)?;
        let value = if active {
            crate::metrics::count_value(self.metadata.desired_replicas)
        } else {
            0.0
        };
        Ok((value, active))
    }
}

impl ScalerKind for CronScaler {
    type Metadata = CronMetadata;

    fn parse(config: &ScalerConfig) -> Result<CronMetadata, ScalerError> {
        parse(config)
    }

    fn params() -> Vec<ParamInfo> {
        CronParams::params()
    }

    fn metric_specs(metadata: &CronMetadata, config: &ScalerConfig) -> Option<Vec<MetricSpec>> {
        let name = normalized_metric_name(
            config.trigger_index,
            &format!(
                "cron-{}-{}-{}",
                metadata.timezone,
                name_part(&metadata.start),
                name_part(&metadata.end)
            ),
        );
        // Target 1: with AverageValue the HPA then asks for exactly desiredReplicas pods.
        Some(vec![MetricSpec::external(
            name,
            MetricTarget::new(metadata.metric_type, 1.0),
        )])
    }

    async fn connect(
        metadata: CronMetadata,
        config: &ScalerConfig,
        _pools: &Pools,
    ) -> Result<Self, ConnectError> {
        Ok(Self {
            trigger: config.trigger_label(),
            metadata,
        })
    }

    async fn read(&self, metric_name: &str) -> Result<Reading, BackendError> {
        // A zone that does not load is reported at poll, as KEDA does; the message names the
        // parameter.
        let (value, active) = self
            .value_at(Timestamp::now())
            .map_err(|e| BackendError::protocol(e.message()))?;
        Ok(Reading::value(metric_name, value, active))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;

    fn cfg(index: usize, metadata: &[(&str, &str)]) -> ScalerConfig {
        ScalerConfig::new("cron", index).with_metadata(metadata.iter().copied())
    }

    fn scaler(tz: &str, start: &str, end: &str) -> CronScaler {
        CronScaler::new(&cfg(
            0,
            &[
                ("timezone", tz),
                ("start", start),
                ("end", end),
                ("desiredReplicas", "10"),
            ],
        ))
        .unwrap()
    }

    fn local(tz: &str, text: &str) -> Timestamp {
        let dt: DateTime = text.parse().unwrap();
        dt.to_zoned(TimeZone::get(tz).unwrap()).unwrap().timestamp()
    }

    // KEDA's cron_scaler_test.go table, as facts.

    #[test]
    fn metadata_table() {
        assert!(parse(&cfg(0, &[])).is_err());
        let err = parse(&cfg(
            0,
            &[
                ("timezone", "Etc/UTC"),
                ("start", "0 0 * * *"),
                ("end", "0 1 * * *"),
            ],
        ))
        .unwrap_err();
        assert_eq!(err.parameter(), Some("desiredReplicas"));
        let err = parse(&cfg(
            0,
            &[
                ("start", "0 0 * * *"),
                ("end", "0 1 * * *"),
                ("desiredReplicas", "3"),
            ],
        ))
        .unwrap_err();
        assert_eq!(err.parameter(), Some("timezone"));
        let ok = [
            ("timezone", "Etc/UTC"),
            ("start", "30-33 * * * *"),
            ("end", "45-50 * * * *"),
            ("desiredReplicas", "10"),
        ];
        parse(&cfg(0, &ok)).unwrap();
        for (param, bad) in [
            ("start", "-30 * * * *"),
            ("end", "-50 * * * *"),
            ("end", "50 * * -3 *"),
        ] {
            let mut m = ok.to_vec();
            m.retain(|(k, _)| *k != param);
            m.push((param, bad));
            let err = parse(&cfg(0, &m)).unwrap_err();
            assert_eq!(err.parameter(), Some(param), "{err}");
            assert!(
                err.message()
                    .starts_with(&format!("error parsing {param} schedule: ")),
                "{err}"
            );
        }
        let err = parse(&cfg(
            0,
            &[
                ("timezone", "Etc/UTC"),
                ("start", "0 0 * * *"),
                ("end", "0 0 * * *"),
                ("desiredReplicas", "1"),
            ],
        ))
        .unwrap_err();
        assert!(
            err.message()
                .contains("start and end can not have exactly same time input")
        );
        let err = parse(&cfg(
            0,
            &[
                ("desiredReplicas", "0"),
                ("timezone", "x"),
                ("start", "0 0 * * *"),
                ("end", "0 1 * * *"),
            ],
        ))
        .unwrap_err();
        assert_eq!(err.message(), "no desiredReplicas specified");
    }

    #[test]
    fn metric_names() {
        let name = |i, start, end| {
            DESCRIPTOR
                .parse(&cfg(
                    i,
                    &[
                        ("timezone", "Etc/UTC"),
                        ("start", start),
                        ("end", end),
                        ("desiredReplicas", "1"),
                    ],
                ))
                .unwrap()
                .unwrap()[0]
                .external_metric_name()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            name(0, "0 0 * * Thu", "59 23 * * Thu"),
            "s0-cron-Etc-UTC-00xxThu-5923xxThu"
        );
        assert_eq!(
            name(1, "0 */2 * * *", "0 1-23/2 * * *"),
            "s1-cron-Etc-UTC-0xSl2xxx-01-23Sl2xxx"
        );
        assert_eq!(
            name(2, "0,30 * * * *", "15,45 * * * *"),
            "s2-cron-Etc-UTC-0Cm30xxxx-15Cm45xxxx"
        );
    }

    #[test]
    fn integer_target_of_one() {
        let specs = DESCRIPTOR.parse(&EXAMPLE.config("cron")).unwrap().unwrap();
        assert_eq!(specs[0].target().quantity(), "1");
    }

    #[test]
    fn inside_and_outside_a_daytime_window() {
        let s = scaler("Etc/UTC", "0 6 * * *", "0 20 * * *");
        let tz = "Etc/UTC";
        assert_eq!(
            s.value_at(local(tz, "2026-05-04T05:59")).unwrap(),
            (0.0, false)
        );
        // At the start minute the next start is tomorrow, the next end tonight: active.
        assert_eq!(
            s.value_at(local(tz, "2026-05-04T06:00")).unwrap(),
            (10.0, true)
        );
        assert_eq!(
            s.value_at(local(tz, "2026-05-04T19:59")).unwrap(),
            (10.0, true)
        );
        // At the end minute the window is closed.
        assert_eq!(
            s.value_at(local(tz, "2026-05-04T20:00")).unwrap(),
            (0.0, false)
        );
        assert_eq!(
            s.value_at(local(tz, "2026-05-04T23:00")).unwrap(),
            (0.0, false)
        );
    }

    #[test]
    fn window_crossing_midnight() {
        let s = scaler("Etc/UTC", "0 22 * * *", "0 2 * * *");
        let tz = "Etc/UTC";
        assert!(!s.activity_at(local(tz, "2026-05-04T21:59")).unwrap());
        assert!(s.activity_at(local(tz, "2026-05-04T22:00")).unwrap());
        assert!(s.activity_at(local(tz, "2026-05-04T23:59:59")).unwrap());
        assert!(s.activity_at(local(tz, "2026-05-05T00:00")).unwrap());
        assert!(s.activity_at(local(tz, "2026-05-05T01:59")).unwrap());
        assert!(!s.activity_at(local(tz, "2026-05-05T02:00")).unwrap());
        assert!(!s.activity_at(local(tz, "2026-05-05T12:00")).unwrap());
    }

    #[test]
    fn timezone_shifts_the_window() {
        let s = scaler("America/New_York", "0 9 * * 1-5", "0 17 * * 1-5");
        // 2026-05-04 is a Monday; New York is UTC-4 in May.
        assert!(!s.activity_at(local("Etc/UTC", "2026-05-04T12:59")).unwrap());
        assert!(s.activity_at(local("Etc/UTC", "2026-05-04T13:00")).unwrap());
        assert!(s.activity_at(local("Etc/UTC", "2026-05-04T20:59")).unwrap());
        assert!(!s.activity_at(local("Etc/UTC", "2026-05-04T21:00")).unwrap());
        // Saturday: no window.
        assert!(
            !s.activity_at(local("America/New_York", "2026-05-09T10:00"))
                .unwrap()
        );
        // Friday 16:00 is inside; the window closes at 17:00 Friday, not Monday.
        assert!(
            s.activity_at(local("America/New_York", "2026-05-08T16:00"))
                .unwrap()
        );
    }

    #[test]
    fn dst_transitions() {
        // New York springs forward on 2026-03-08 at 02:00 → 03:00 and falls back on 2026-11-01.
        let s = scaler("America/New_York", "0 1 * * *", "0 4 * * *");
        let tz = "America/New_York";
        // 01:00–04:00 local is 2 real hours on the spring day; still active right before 04:00.
        assert!(s.activity_at(local(tz, "2026-03-08T01:30")).unwrap());
        assert!(s.activity_at(local(tz, "2026-03-08T03:59")).unwrap());
        assert!(!s.activity_at(local(tz, "2026-03-08T04:00")).unwrap());
        // On the fall-back day the window is 4 real hours; the repeated 01:xx hour stays inside.
        let first_130 = local(tz, "2026-11-01T01:30"); // compatible → first (EDT) occurrence
        assert!(s.activity_at(first_130).unwrap());
        assert!(
            s.activity_at(first_130 + jiff::SignedDuration::from_hours(1))
                .unwrap()
        );
        assert!(!s.activity_at(local(tz, "2026-11-01T04:00")).unwrap());
        // A start inside the skipped hour does not fire, but the window rule only compares the next
        // end with the next start, so the window still counts as open until its end.
        let gap = scaler("America/New_York", "30 2 * * *", "0 5 * * *");
        assert!(gap.activity_at(local(tz, "2026-03-08T03:30")).unwrap());
        assert!(!gap.activity_at(local(tz, "2026-03-08T05:00")).unwrap());
        assert!(gap.activity_at(local(tz, "2026-03-09T02:30")).unwrap());
    }

    #[tokio::test]
    async fn compliance() {
        use crate::testing::{ComplianceCase, check_live, check_parsing};
        let registry = crate::registry::Registry::builtin();
        // A window open all year but its last minute, so the live value is desiredReplicas.
        let case = ComplianceCase {
            config: cfg(
                0,
                &[
                    ("timezone", "Etc/UTC"),
                    ("start", "0 0 1 1 *"),
                    ("end", "59 23 31 12 *"),
                    ("desiredReplicas", "3"),
                ],
            ),
            required: vec!["timezone", "start", "end", "desiredReplicas"],
            invalid: vec![
                ("start", "-30 * * * *"),
                ("end", "50 * * -3 *"),
                ("desiredReplicas", "x"),
                ("desiredReplicas", "0"),
            ],
            activation_param: None,
            current_value: 3.0,
        };
        check_parsing(&registry, &case);
        check_live(&registry, &crate::pools::Pools::new(), &case).await;
    }

    #[test]
    fn unknown_timezone_fails_at_poll_naming_the_parameter() {
        let s = scaler("Mars/Olympus", "0 6 * * *", "0 20 * * *");
        let err = s.activity_at(Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(err.parameter(), Some("timezone"));
        assert!(err.message().starts_with("unable to load timezone: "));
    }
}
