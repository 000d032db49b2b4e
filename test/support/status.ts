import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { KafkaConnectClient } from '@aws-sdk/client-kafkaconnect';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import type { AwsClients } from '../../tools/status/aws';

/**
 * The deployed status collector's clients, each mocked: nothing local emulates MSK Connect or CloudWatch. A mocked
 * client answers a command nobody set up with undefined; each test sets up what its environment answers.
 */
export function mockedStatusClients() {
  const clients: AwsClients = {
    kafkaConnect: new KafkaConnectClient({ region: 'eu-west-1' }),
    cloudWatch: new CloudWatchClient({ region: 'eu-west-1' }),
    sqs: new SQSClient({ region: 'eu-west-1' }),
    s3: new S3Client({ region: 'eu-west-1' }),
    cloudFormation: new CloudFormationClient({ region: 'eu-west-1' }),
  };
  const mocks = {
    kafkaConnect: mockClient(clients.kafkaConnect),
    cloudWatch: mockClient(clients.cloudWatch),
    sqs: mockClient(clients.sqs),
    s3: mockClient(clients.s3),
    cloudFormation: mockClient(clients.cloudFormation),
  };
  return { clients, mocks };
}
