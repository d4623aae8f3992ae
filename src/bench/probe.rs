//! A small HTTP client for the benchmark's own requests (logins, admin calls, the revocation
//! trials' actions). The load itself comes from wrk.

use reqwest::Method;
use std::collections::BTreeMap;
use std::sync::Mutex;

use super::BenchError;

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    jar: Mutex<BTreeMap<String, String>>,
}

pub struct Reply {
    pub status: u16,
    /// Raw `Set-Cookie` header values.
    pub set_cookies: Vec<String>,
    pub body: String,
}

pub fn form_value(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

impl Client {
    /// A client holding the cookies of a `Cookie` header (`a=1; b=2`), values as sent.
    pub fn holding(base: &str, cookie_header: &str) -> Result<Client, BenchError> {
        let client = Client::new(base)?;
        {
            let mut jar = client.jar.lock().unwrap_or_else(|p| p.into_inner());
            for pair in cookie_header.split("; ").filter(|p| !p.is_empty()) {
                if let Some((name, value)) = pair.split_once('=') {
                    jar.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(client)
    }

    pub fn new(base: &str) -> Result<Client, BenchError> {
        Ok(Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| BenchError::Setup(e.to_string()))?,
            base: base.to_owned(),
            jar: Mutex::new(BTreeMap::new()),
        })
    }

    /// The `Cookie` header this client sends.
    pub fn cookie_header(&self) -> String {
        self.jar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Reply, BenchError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        let cookies = self.cookie_header();
        if !cookies.is_empty() {
            request = request.header("cookie", cookies);
        }
        let response = build(request)
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("request to {path} failed: {e}")))?;
        let status = response.status().as_u16();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        {
            let mut jar = self.jar.lock().unwrap_or_else(|p| p.into_inner());
            for raw in &set_cookies {
                if let Ok(cookie) = actix_web::cookie::Cookie::parse(raw.clone()) {
                    if cookie.value().is_empty() {
                        jar.remove(cookie.name());
                    } else {
                        jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
                    }
                }
            }
        }
        let body = response.text().await.unwrap_or_default();
        Ok(Reply {
            status,
            set_cookies,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply, BenchError> {
        self.send(Method::GET, path, |r| r).await
    }

    pub async fn login(&self, user: &str, password: &str) -> Result<Reply, BenchError> {
        let form = self.get("/login").await?;
        let csrf = form_value(&form.body, "csrf")
            .ok_or_else(|| BenchError::Setup("the login form has no CSRF token".into()))?;
        let reply = self
            .send(Method::POST, "/login", |r| {
                r.form(&[("username", user), ("password", password), ("csrf", &csrf)])
            })
            .await?;
        if reply.status != 303 {
            return Err(BenchError::Setup(format!(
                "login of {user} answered {}",
                reply.status
            )));
        }
        Ok(reply)
    }

    pub async fn logout(&self) -> Result<Reply, BenchError> {
        let home = self.get("/").await?;
        let csrf = form_value(&home.body, "csrf").unwrap_or_default();
        self.send(Method::POST, "/logout", |r| {
            r.form(&[("csrf", csrf.as_str())])
        })
        .await
    }

    /// A JSON API call with the session's CSRF token.
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Reply, BenchError> {
        let token: serde_json::Value = serde_json::from_str(&self.get("/api/csrf").await?.body)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let token = token["csrf"].as_str().unwrap_or_default().to_owned();
        self.send(method, path, |r| {
            let r = r.header("x-csrf-token", token);
            match body {
                Some(body) => r.json(&body),
                None => r,
            }
        })
        .await
    }
}
