//! ARNs in AWS's format for the caller's partition, region and account.

/// `arn:aws:ssm:{region}:{account}:{resource}`.
pub fn ssm(region: &str, account: &str, resource: &str) -> String {
    format!("arn:aws:ssm:{region}:{account}:{resource}")
}

/// The ARN of a document.
pub fn document(region: &str, account: &str, name: &str) -> String {
    ssm(region, account, &format!("document/{name}"))
}

/// The ARN of an IAM user of an account.
pub fn user(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

/// The ARN of an account's root user.
pub fn root_user(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

/// A parsed `arn:aws:ssm:region:account:document/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentArn {
    /// The region in the ARN.
    pub region: String,
    /// The owning account (empty for Amazon-owned documents).
    pub account: String,
    /// The document name.
    pub name: String,
}

/// Splits a document reference into an ARN, or `None` when it is a plain name.
pub fn parse_document(reference: &str) -> Option<DocumentArn> {
    let rest = reference.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next()?;
    if parts.next()? != "ssm" {
        return None;
    }
    let region = parts.next()?.to_string();
    let account = parts.next()?.to_string();
    let name = parts.next()?.strip_prefix("document/")?.to_string();
    Some(DocumentArn { region, account, name })
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let arn = super::document("us-east-1", "123456789012", "MyDoc");
        assert_eq!(arn, "arn:aws:ssm:us-east-1:123456789012:document/MyDoc");
        let p = super::parse_document(&arn).unwrap();
        assert_eq!((p.region.as_str(), p.account.as_str(), p.name.as_str()), ("us-east-1", "123456789012", "MyDoc"));
        assert!(super::parse_document("MyDoc").is_none());
    }
}
