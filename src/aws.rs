//! The AWS SDK clients qldb-local itself uses (journal exports and streams, `import` from
//! S3): one configuration for both, rustls with ring, the standard credential chain and
//! endpoint variables. A leaf: it knows nothing of qldb-local's other modules.

use aws_config::{BehaviorVersion, SdkConfig};

/// The AWS SDK configuration the jobs (and `qldb-local import`) use: the standard
/// credential chain and endpoint variables, `region` when the environment names none.
pub async fn sdk_config(region: &str) -> SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new(region.to_string()));
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(region)
        .load()
        .await
}

/// An S3 client: `endpoint` overrides the endpoint variables.
pub fn s3_client(sdk: &SdkConfig, endpoint: Option<&str>, path_style: bool) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style);
    if let Some(url) = endpoint {
        b = b.endpoint_url(url);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}
