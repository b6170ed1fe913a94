# The existing EKS cluster, and names derived once for the other files.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_iam_openid_connect_provider" "cluster" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

data "aws_subnet" "private" {
  for_each = toset(var.subnet_ids)
  id       = each.value

  lifecycle {
    postcondition {
      condition     = self.vpc_id == var.vpc_id && !self.map_public_ip_on_launch
      error_message = "Each subnet must be a private subnet of vpc_id (Fargate runs only in private subnets)."
    }
  }
}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  oidc_host = replace(data.aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")

  # MSK IAM resources share the cluster's name/uuid path: …:topic/NAME/UUID/TOPIC, and so on.
  msk_topic            = replace(var.msk_cluster_arn, ":cluster/", ":topic/")
  msk_group            = replace(var.msk_cluster_arn, ":cluster/", ":group/")
  msk_transactional_id = replace(var.msk_cluster_arn, ":cluster/", ":transactional-id/")

  # Fixed by the worker (csvkafka_worker/positions.py, kafka_config.py): the exactly-once positions
  # topic, transactional ids "csvkafka-<job id>" and the positions reader's "csvkafka-reader-<uuid>".
  positions_topic = "csvkafka-positions"

  worker_service_account   = "csvkafka-worker"
  operator_service_account = "csvkafka-operator"
  topics                   = distinct(concat([var.kafka_topic], var.extra_kafka_topics))
  chart_path               = coalesce(var.chart_path, "${path.module}/../helm/csvkafka")
}
