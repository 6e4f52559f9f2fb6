/** Requests and answers in the integration guide's shapes, with camelCase names. */

export interface Participant {
  partyId: string;
  /** `server`, `recovery`, or the device's platform (`android`, `ios`, …). */
  deviceType?: string;
}

export interface KeygenRequest {
  thresholdN: number;
  thresholdT: number;
  participants: Participant[];
  username?: string;
  email?: string;
}

export interface KeygenResponse {
  sessionId: string;
  sessionType: string;
  thresholdN: number;
  thresholdT: number;
  /** party id → join token. Secret: hand each to its party only. */
  joinTokens: Record<string, string>;
  status: string;
  accountId: string;
  expiresAt: string;
}

export interface GenerateUserShareRequest {
  sessionId: string;
  partyId: string;
  joinToken: string;
  /** The device's P-256 public key (SEC1 hex): the share comes back sealed to it. */
  userPublicKey?: string;
}

export interface UserShare {
  sessionId: string;
  partyId: string;
  partyIndex: number;
  /** Hex. Secret: keep it on the device. */
  shareData: string;
  /** The group key, uncompressed (`04…`), hex. */
  publicKey: string;
}

export interface SignParticipant {
  partyId: string;
  /** The device's stored share: with it the Account Service signs in one call. */
  shareData?: string;
  deviceType?: string;
}

export interface SignRequest {
  accountId: string;
  /** 32 bytes as 64 hex characters (`0x` accepted). */
  messageHash: string;
  participants: SignParticipant[];
}

/** `ecrecover(hash, r, s, v)` is the group key; `signature` is DER hex. */
export interface Signature {
  signature: string;
  r: string;
  s: string;
  v: number;
  sessionId: string;
}

export interface SignSession {
  sessionId: string;
  sessionType: string;
  accountId: string;
  messageHash: string;
  thresholdT: number;
  joinTokens: Record<string, string>;
  status: string;
  expiresAt: string;
  signature?: string;
  r?: string;
  s?: string;
  v?: number;
}

export interface SessionParticipant {
  partyId: string;
  partyIndex: number;
  deviceType: string | null;
  status: string;
  joinedAt: string | null;
}

export interface Session {
  sessionId: string;
  sessionType: string;
  /** `created`, `waiting`, `in_progress`, `completed`, `failed`, `expired`. */
  status: string;
  thresholdN: number;
  thresholdT: number;
  accountId: string | null;
  participants: SessionParticipant[];
  messageHash: string | null;
  publicKey: string | null;
  ethereumAddress: string | null;
  signature: string | null;
  r: string | null;
  s: string | null;
  v: number | null;
  failureReason: string | null;
  blamedPartyId: string | null;
  createdAt: string | null;
  expiresAt: string | null;
  completedAt: string | null;
}

export interface ShareInfo {
  partyId: string;
  partyIndex: number;
  shareType: string;
  deviceType: string | null;
  storageLocation: string | null;
  isActive: boolean;
  createdAt: string;
}

export interface Account {
  accountId: string;
  username: string | null;
  email: string | null;
  status: string;
  thresholdN: number;
  thresholdT: number;
  publicKey: string | null;
  ethereumAddress: string | null;
  keygenSessionId: string | null;
  failureReason: string | null;
  createdAt: string;
  updatedAt: string;
  shares?: ShareInfo[];
}

export interface AccountList {
  accounts: Account[];
  total: number;
  limit: number;
  offset: number;
}

export interface SessionCreated {
  sessionId: string;
  sessionType: string;
  accountId: string;
  thresholdN: number;
  thresholdT: number;
  joinTokens: Record<string, string>;
  status: string;
  expiresAt: string;
}

export interface AccessToken {
  accessToken: string;
  tokenType: string;
  scope: string;
  accountId: string;
  expiresAt: string;
}

export interface DeviceSignature extends Signature {
  partyId: string;
}

export interface SignWithUserShareRequest {
  sessionId: string;
  partyId: string;
  joinToken: string;
  shareData: string;
  messageHash: string;
}

export interface RefreshWithUserShareRequest {
  sessionId: string;
  partyId: string;
  joinToken: string;
  shareData: string;
  userPublicKey?: string;
}

export interface RecoveryNewUserShareRequest {
  sessionId: string;
  partyId: string;
  joinToken: string;
  shareData?: string;
  userPublicKey?: string;
}

export interface RecoverRequest {
  lostPartyId: string;
  newPartyId: string;
  deviceType?: string;
  helpers?: string[];
}

/** Per call: an `AbortSignal` ends it at once (and any retry or wait). */
export interface CallOptions {
  signal?: AbortSignal;
}
