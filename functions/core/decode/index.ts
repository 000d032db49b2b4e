export { JsonDebeziumDecoder, type JsonDecoderOptions } from './decoder';
