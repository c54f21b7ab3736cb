"""Google Cloud adapters: clients, the lean GCS reader, BigQuery, Pub/Sub, events, resource names."""
