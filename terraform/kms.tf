# One customer managed key for the module's data at rest: checkpoints, images, logs.

resource "aws_kms_key" "csvkafka" {
  description             = "csvkafka: checkpoint table, image repository and Fargate logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "csvkafka" {
  name          = "alias/csvkafka"
  target_key_id = aws_kms_key.csvkafka.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:the account-root statement is AWS's default key policy; it delegates to IAM and grants nothing by itself
  #checkov:skip=CKV_AWS_111:the account-root statement is AWS's default key policy; it delegates to IAM and grants nothing by itself
  #checkov:skip=CKV_AWS_356:in a key policy "*" is the key itself, the only resource a key policy can name

  # AWS's default key policy statement (required): without it no IAM policy can use or manage the
  # key, and a key no one can manage cannot be recovered. In a key policy "*" means this key.
  statement {
    sid       = "AccountRootDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }

  # CloudWatch Logs encrypts the Fargate log group with this key, and only that log group.
  statement {
    sid = "CloudWatchLogsForTheFargateLogGroup"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.aws_region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = [local.fargate_log_group_arn]
    }
  }
}
