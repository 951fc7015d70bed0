"""The CRM-style relations layer over Zanzibar tuples."""
