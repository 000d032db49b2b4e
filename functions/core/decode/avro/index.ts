export { type AvroSchema, compileAvroType } from './avsc-types';
export { avroToConnect, type ConnectSchema, connectToAvro } from './connect';
export { AvroDebeziumDecoder, type AvroDecoderOptions, peekSchemaRef } from './decoder';
export { confluentFrame, type Frame, glueFrame, type RegistryKind, readFrame } from './framing';
export type { SchemaRegistryClient } from './registry';
