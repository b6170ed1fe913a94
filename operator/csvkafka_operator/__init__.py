"""csvkafka operator: reconciles CsvKafkaImport resources into Jobs."""
