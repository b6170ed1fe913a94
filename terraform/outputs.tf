output "ecr_repository_url" {
  description = "Push the csvkafka image here (tags are immutable)."
  value       = aws_ecr_repository.csvkafka.repository_url
}

output "checkpoint_table" {
  description = "The DynamoDB checkpoint table: spec.checkpoint.table of every import."
  value       = aws_dynamodb_table.checkpoints.name
}

output "worker_role_arn" {
  value = aws_iam_role.worker.arn
}

output "operator_role_arn" {
  value = aws_iam_role.operator.arn
}

output "fargate_log_group" {
  description = "CloudWatch log group of the Fargate pods (aws logs tail NAME --follow)."
  value       = aws_cloudwatch_log_group.fargate.name
}

output "example_import" {
  description = "A CsvKafkaImport for this installation: kubectl apply -f <(terraform output -raw example_import)."
  value = yamlencode({
    apiVersion = "csvkafka.io/v1alpha1"
    kind       = "CsvKafkaImport"
    metadata   = { name = "example", namespace = var.import_namespaces[0] }
    spec = {
      source     = { uri = "s3://${var.s3_buckets[0]}/exports/data.csv" }
      sink       = { bootstrapServers = var.kafka_bootstrap_servers, topic = var.kafka_topic, auth = { mechanism = "msk-iam", tls = true } }
      checkpoint = { table = aws_dynamodb_table.checkpoints.name }
      capacity   = "fargate"
    }
  })
}
