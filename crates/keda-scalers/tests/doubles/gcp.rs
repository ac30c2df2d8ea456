//! **Test double** of Google's OAuth2 token endpoint (JWT-bearer grant, RFC 7523, as used with
//! service-account keys) and of Cloud Monitoring's `POST /v3/projects/{project}/timeSeries:query`
//! (MQL). The token endpoint verifies the RS256 assertion against the test key's public half,
//! its `iss`, `aud` and `scope`; the query endpoint requires the issued bearer token and answers
//! from the series the test sets, keyed by project, resource type, resource id and metric type.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{HttpDouble, Seen, query_param};

pub const TEST_KEY_PEM: &str = include_str!("gcp_test_key.pem");
pub const CLIENT_EMAIL: &str = "keda@test-project.iam.gserviceaccount.com";
const ACCESS_TOKEN: &str = "ya29.test-access-token";

/// A series: `None` = a series without points.
type Series = Option<serde_json::Value>;

#[derive(Default)]
pub struct State {
    /// (project, type, id, metric) → series.
    pub series: BTreeMap<(String, String, String, String), Series>,
    pub token_requests: usize,
    pub rejected: usize,
    pub queries: Vec<String>,
}

pub struct GcpDouble {
    pub http: HttpDouble,
    pub state: Arc<Mutex<State>>,
}

impl GcpDouble {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let s = Arc::clone(&state);
        let addr_cell = Arc::new(Mutex::new(String::new()));
        let addr_for_handler = Arc::clone(&addr_cell);
        let http = HttpDouble::start(move |req| {
            let base = addr_for_handler.lock().unwrap().clone();
            handle(&s, &base, &req)
        })
        .await;
        *addr_cell.lock().unwrap() = format!("http://{}", http.addr);
        Self { http, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http.addr)
    }

    /// A service-account key file whose `token_uri` points at this double.
    pub fn credentials_json(&self) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "k1",
            "private_key": TEST_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "token_uri": format!("{}/token", self.base_url()),
        })
        .to_string()
    }

    pub fn set_int(&self, project: &str, kind: &str, id: &str, metric: &str, value: i64) {
        self.set(
            project,
            kind,
            id,
            metric,
            Some(serde_json::json!({"int64Value": value.to_string()})),
        );
    }

    pub fn set_double(&self, project: &str, kind: &str, id: &str, metric: &str, value: f64) {
        self.set(
            project,
            kind,
            id,
            metric,
            Some(serde_json::json!({"doubleValue": value})),
        );
    }

    pub fn set_no_points(&self, project: &str, kind: &str, id: &str, metric: &str) {
        self.set(project, kind, id, metric, None);
    }

    fn set(&self, project: &str, kind: &str, id: &str, metric: &str, value: Series) {
        self.state.lock().unwrap().series.insert(
            (project.into(), kind.into(), id.into(), metric.into()),
            value,
        );
    }

    pub fn last_query(&self) -> Option<String> {
        self.state.lock().unwrap().queries.last().cloned()
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    pub fn rejected(&self) -> usize {
        self.state.lock().unwrap().rejected
    }
}

fn public_key() -> Vec<u8> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::pki_types::pem::PemObject;
    let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_KEY_PEM.as_bytes()).unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec()
}

fn verify_assertion(assertion: &str, token_uri: &str) -> Result<(), String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("not a JWT".into());
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key(),
    )
    .verify(format!("{header}.{claims}").as_bytes(), &signature)
    .map_err(|_| "bad signature".to_owned())?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ok = header["alg"] == "RS256"
        && claims["iss"] == CLIENT_EMAIL
        && claims["aud"] == token_uri
        && claims["scope"] == "https://www.googleapis.com/auth/monitoring.read"
        && claims["exp"].as_u64().is_some_and(|exp| exp > now);
    if ok {
        Ok(())
    } else {
        Err(format!("bad claims {claims}"))
    }
}

fn error(status: u16, message: &str) -> (u16, &'static str, String) {
    (
        status,
        "application/json",
        serde_json::json!({"error": {"code": status, "message": message}}).to_string(),
    )
}

fn handle(state: &Mutex<State>, base: &str, req: &Seen) -> (u16, &'static str, String) {
    let mut st = state.lock().unwrap();
    if req.path == "/token" && req.method == "POST" {
        st.token_requests += 1;
        let form = String::from_utf8_lossy(&req.body).into_owned();
        if query_param(&form, "grant_type").as_deref()
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            || req.content_type.as_deref() != Some("application/x-www-form-urlencoded")
        {
            st.rejected += 1;
            return error(400, "unsupported_grant_type");
        }
        let assertion = query_param(&form, "assertion").unwrap_or_default();
        if let Err(e) = verify_assertion(&assertion, &format!("{base}/token")) {
            st.rejected += 1;
            return error(400, &format!("invalid_grant: {e}"));
        }
        return (
            200,
            "application/json",
            serde_json::json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}).to_string(),
        );
    }
    let Some(project) = req
        .path
        .strip_prefix("/v3/projects/")
        .and_then(|p| p.strip_suffix("/timeSeries:query"))
    else {
        return error(404, "not found");
    };
    if req.authorization.as_deref() != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        st.rejected += 1;
        return error(401, "Request had invalid authentication credentials.");
    }
    let body: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(_) => return error(400, "invalid JSON"),
    };
    let query = body["query"].as_str().unwrap_or_default().to_owned();
    st.queries.push(query.clone());
    // fetch pubsub_<type> | metric '<metric>' | filter (resource.project_id == '<p>' && resource.<type>_id == '<id>') | …
    let re = regex::Regex::new(
        r"^fetch pubsub_(\w+) \| metric '([^']+)' \| filter \(resource\.project_id == '([^']*)' && resource\.(\w+)_id == '([^']*)'\) \| within \S+",
    )
    .unwrap();
    let Some(c) = re.captures(&query) else {
        return error(400, &format!("could not parse MQL: {query}"));
    };
    if c[3] != *project || c[1] != c[4] {
        return error(400, "project or resource type mismatch");
    }
    let key = (
        c[3].to_owned(),
        c[1].to_owned(),
        c[5].to_owned(),
        c[2].to_owned(),
    );
    let data = match st.series.get(&key) {
        None => serde_json::json!({}),
        Some(None) => serde_json::json!({"timeSeriesData": [{"labelValues": [], "pointData": []}]}),
        Some(Some(value)) => serde_json::json!({"timeSeriesData": [{
            "labelValues": [],
            "pointData": [{"values": [value], "timeInterval": {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:01:00Z"}}]
        }]}),
    };
    (200, "application/json", data.to_string())
}
