"""csvkafka worker: streams CSV objects from S3 into Kafka with DynamoDB checkpoints."""
