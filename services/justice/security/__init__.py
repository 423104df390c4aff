"""Identity from mTLS certificates, authorisation rules, four-eyes approvals."""
