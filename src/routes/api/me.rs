use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::auth::Identity;
use crate::state::AppState;

#[derive(Serialize)]
struct Me<'a> {
    username: &'a str,
    roles: &'a [String],
    mode: &'a str,
}

#[tracing::instrument(name = "api me", skip_all, fields(username = %identity.username))]
pub async fn get(identity: Identity, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        username: &identity.username,
        roles: &identity.roles,
        mode: state.settings.auth.mode.as_str(),
    })
}
