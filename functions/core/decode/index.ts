export { decodeBase64, headerText, utf8Text } from './bytes';
export { JsonDebeziumDecoder, type JsonDecoderOptions } from './decoder';
export { parseJson } from './json';
