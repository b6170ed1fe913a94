# IRSA roles of the worker and operator ServiceAccounts. Every action is named; every resource is
# a named bucket, table, cluster, topic, or the csvkafka-* ids the worker itself chooses.

locals {
  # Who may assume each role: the ServiceAccounts it is annotated on, through the cluster's OIDC provider.
  irsa_subjects = {
    worker   = [for ns in var.import_namespaces : "system:serviceaccount:${ns}:${local.worker_service_account}"]
    operator = ["system:serviceaccount:${var.namespace}:${local.operator_service_account}"]
  }
}

data "aws_iam_policy_document" "trust" {
  for_each = local.irsa_subjects

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [data.aws_iam_openid_connect_provider.cluster.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = each.value
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# The checkpoint table is encrypted with the module's key, and DynamoDB uses the key with the
# caller's permissions: each role that reads or writes checkpoints needs these, only through DynamoDB.
data "aws_iam_policy_document" "checkpoint_key" {
  statement {
    sid       = "CheckpointTableKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.csvkafka.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.aws_region}.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "worker" {
  source_policy_documents = [data.aws_iam_policy_document.checkpoint_key.json]

  statement {
    sid       = "ReadSourceObjects"
    actions   = ["s3:GetObject"]
    resources = [for b in var.s3_buckets : "arn:${local.partition}:s3:::${b}/*"]
  }

  # Without ListBucket S3 answers a missing object with 403, not 404, and the import would report
  # "access denied" where "no such object" is the truth.
  statement {
    sid       = "ListSourceBuckets"
    actions   = ["s3:ListBucket"]
    resources = [for b in var.s3_buckets : "arn:${local.partition}:s3:::${b}"]
  }

  # The manifest of an import's receipts (spec.receipts.manifestUri), written by its last worker.
  dynamic "statement" {
    for_each = length(var.manifest_prefixes) > 0 ? [var.manifest_prefixes] : []
    content {
      sid       = "WriteManifests"
      actions   = ["s3:PutObject"]
      resources = [for p in statement.value : "arn:${local.partition}:s3:::${p}*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.source_kms_key_arns) > 0 ? [var.source_kms_key_arns] : []
    content {
      sid       = "DecryptSourceObjectsThroughS3"
      actions   = ["kms:Decrypt"]
      resources = statement.value

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${var.aws_region}.amazonaws.com"]
      }
    }
  }

  # The worker claims its shard's checkpoint item (a conditional UpdateItem: the lease), reads it and
  # the other shards' (GetItem), and writes it (a conditional PutItem). People delete items with
  # their own credentials (csvkafka checkpoint delete), the operator with its role.
  statement {
    sid       = "Checkpoints"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.checkpoints.arn]
  }

  # WriteDataIdempotently: the producer is idempotent (and transactional in exactly-once mode).
  statement {
    sid       = "ConnectToCluster"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid       = "WriteTopics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    resources = [for t in local.topics : "${local.msk_topic}/${t}"]
  }

  # Exactly-once: each shard's position is written to this compacted topic inside its transaction,
  # and read back on resume; the worker creates the topic on first use.
  statement {
    sid = "PositionsTopic"
    actions = [
      "kafka-cluster:CreateTopic",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:WriteData",
      "kafka-cluster:ReadData",
    ]
    resources = ["${local.msk_topic}/${local.positions_topic}"]
  }

  statement {
    sid       = "TransactionalIds"
    actions   = ["kafka-cluster:DescribeTransactionalId", "kafka-cluster:AlterTransactionalId"]
    resources = ["${local.msk_transactional_id}/csvkafka-*"]
  }

  statement {
    sid       = "PositionsReaderGroups"
    actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
    resources = ["${local.msk_group}/csvkafka-reader-*"]
  }
}

# The operator reads checkpoints for status (BatchGetItem), writes one to restart from a row and
# deletes them on reset or when an import with retention Delete goes (csvkafka_operator/checkpoints.py).
data "aws_iam_policy_document" "operator" {
  source_policy_documents = [data.aws_iam_policy_document.checkpoint_key.json]

  statement {
    sid       = "Checkpoints"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.checkpoints.arn]
  }
}

resource "aws_iam_role" "worker" {
  name               = "csvkafka-worker"
  description        = "csvkafka worker pods (IRSA): read sources, write topics and checkpoints"
  assume_role_policy = data.aws_iam_policy_document.trust["worker"].json
}

resource "aws_iam_role_policy" "worker" {
  name   = "csvkafka-worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_role" "operator" {
  name               = "csvkafka-operator"
  description        = "csvkafka operator (IRSA): checkpoints for status, restart and reset"
  assume_role_policy = data.aws_iam_policy_document.trust["operator"].json
}

resource "aws_iam_role_policy" "operator" {
  name   = "csvkafka-operator"
  role   = aws_iam_role.operator.id
  policy = data.aws_iam_policy_document.operator.json
}
