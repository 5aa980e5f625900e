//! The vocabulary of the status: condition types, the reasons the operator sets, a condition
//! before its timestamps ([`Cond`]) and why a site is Degraded ([`Problem`]). Shared by the
//! status, the backup health and the restore, which decide the conditions.

/// The conditions a PhotoSite reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConditionType {
    BackupHealthy,
    DatabaseReady,
    Degraded,
    Progressing,
    Ready,
}

impl ConditionType {
    pub const ALL: [ConditionType; 5] = [
        ConditionType::BackupHealthy,
        ConditionType::DatabaseReady,
        ConditionType::Degraded,
        ConditionType::Progressing,
        ConditionType::Ready,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::BackupHealthy => "BackupHealthy",
            ConditionType::DatabaseReady => "DatabaseReady",
            ConditionType::Degraded => "Degraded",
            ConditionType::Progressing => "Progressing",
            ConditionType::Ready => "Ready",
        }
    }

    pub fn parse(s: &str) -> Option<ConditionType> {
        ConditionType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Condition reasons the operator sets itself (errors bring their own, see
/// [`super::Error::reason`]; the backup and restore ones are in [`super::backups::reason`] and
/// [`super::restore::reason`]).
pub mod reason {
    pub const READY: &str = "Ready";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const DATABASE_NOT_READY: &str = "DatabaseNotReady";
    pub const PODS_NOT_READY: &str = "PodsNotReady";
    /// The Deployment cannot create its pods (`ReplicaFailure`: a ResourceQuota or
    /// LimitRange refusal, an admission webhook, a missing ServiceAccount).
    pub const PODS_REFUSED: &str = "PodsRefused";
    /// The rollout passed the Deployment's progress deadline (`ProgressDeadlineExceeded`):
    /// pods that never become ready (an image that cannot be pulled, a crash loop).
    pub const ROLLOUT_STUCK: &str = "RolloutStuck";
    pub const ORIGINALS_PENDING: &str = "OriginalsPending";
    /// The API server refused one or more children.
    pub const CHILD_REFUSED: &str = "ChildRefused";
    /// The site needs a CloudNativePG cluster and CloudNativePG is not installed.
    pub const CLOUDNATIVE_PG_NOT_INSTALLED: &str = "CloudNativePGNotInstalled";
    /// `spec.gateway` needs the Gateway API (HTTPRoute), not installed.
    pub const GATEWAY_API_NOT_INSTALLED: &str = "GatewayAPINotInstalled";
    /// A Gateway of `spec.gateway` refused the site's HTTPRoute (a Ready reason).
    pub const ROUTE_NOT_ACCEPTED: &str = "RouteNotAccepted";
    /// The site's database backups or restore need the Barman Cloud plugin, not installed.
    pub const BARMAN_CLOUD_NOT_INSTALLED: &str = "BarmanCloudNotInstalled";
    /// A Secret that `spec.backup` or `spec.restore` names is missing or lacks a key.
    pub const BACKUP_SECRET_NOT_FOUND: &str = "BackupSecretNotFound";
}

/// One condition before timestamps and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: ConditionType,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: ConditionType,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Cond {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Why a site is Degraded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}
