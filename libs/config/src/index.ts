export { ENV, MODEL_NAME_RE, API_SCOPES, ALL_API_SCOPES, parseApiKeys } from './env';
export type { EnvName, EnvValues, VarSpec, Section, ApiScope, ApiKeyConfig } from './env';
export { loadConfig, loadConfigOrExit, parseEnv, configMarkdown, ConfigError, S3_REQUIRED, defaultModelRoots } from './config';
export type { Config, ModelEntry, S3Config } from './config';
