//! The HTTP ceiling for `benches/run`: a bare actix-web server that reads a POST body
//! (up to 1 MiB) and answers `{}`, and answers GET with `{}` too.
//! `cargo run --release --example ceiling -- 127.0.0.1:9000`
use actix_web::{web, App, HttpResponse, HttpServer};

async fn post(body: web::Bytes) -> HttpResponse {
    std::hint::black_box(body);
    HttpResponse::Ok()
        .content_type("application/json")
        .body("{}")
}

async fn get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body("{}")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    HttpServer::new(|| {
        App::new()
            .app_data(web::PayloadConfig::new(1 << 20))
            .default_service(web::route().to(get))
            .route("/{tail:.*}", web::post().to(post))
    })
    .bind(addr)?
    .run()
    .await
}
