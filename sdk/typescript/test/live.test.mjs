// The SDK against a live `mpc up`, through the Account Service only. Every signature is checked
// with ethers v6 (`recoverAddress`, `SigningKey.recoverPublicKey`), not with the code under test.
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Signature, SigningKey, computeAddress, recoverAddress } from "ethers";
import { MPCClient, MPCError } from "@rwadurian/mpc-client-sdk";
import { startSystem } from "./system.mjs";
import { signEip1559 } from "../examples/eip1559.mjs";

let system;
let client;
let wallet;

function check(publicKey, hash, sig) {
  const h = "0x" + hash.replace(/^0x/, "");
  const signature = Signature.from({ r: "0x" + sig.r, s: "0x" + sig.s, v: 27 + sig.v });
  assert.equal(SigningKey.recoverPublicKey(h, signature), "0x" + publicKey, "ecrecover gives the key");
  assert.equal(recoverAddress(h, signature), computeAddress("0x" + publicKey));
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  assert.ok(BigInt("0x" + sig.s) <= n / 2n, "low s");
  assert.ok(sig.signature.startsWith("30"), "DER");
}

const randomHash = () => randomBytes(32).toString("hex");

before(async () => {
  system = await startSystem();
  client = new MPCClient({ baseUrl: system.url, apiKey: system.apiKey, timeoutMs: 120_000 });
  const keygen = await client.createKeygen({
    thresholdN: 3,
    thresholdT: 2,
    participants: [
      { partyId: "user_device", deviceType: "android" },
      { partyId: "server_party_1", deviceType: "server" },
      { partyId: "server_party_2", deviceType: "server" },
    ],
  });
  assert.deepEqual(Object.keys(keygen.joinTokens).sort(), ["server_party_1", "server_party_2", "user_device"]);
  const share = await client.generateUserShare({
    sessionId: keygen.sessionId,
    partyId: "user_device",
    joinToken: keygen.joinTokens.user_device,
  });
  const done = await client.waitForSession(keygen.sessionId, { timeoutMs: 60_000 });
  assert.equal(done.status, "completed");
  wallet = { keygen, share };
});

after(async () => {
  await system?.stop();
});

test("keygen: the device's share and the account's key", async () => {
  const { keygen, share } = wallet;
  assert.equal(share.partyIndex, 0);
  assert.match(share.publicKey, /^04[0-9a-f]{128}$/);
  const account = await client.getAccount(keygen.accountId);
  assert.equal(account.status, "active");
  assert.equal(account.publicKey, share.publicKey);
  assert.equal(account.ethereumAddress, computeAddress("0x" + share.publicKey));
  assert.deepEqual(account.shares.map((s) => s.shareType), ["user_device", "server", "server"]);
});

test("signTransaction in one call with the device's share", async () => {
  const { keygen, share } = wallet;
  const hash = randomHash();
  const sig = await client.signTransaction({
    accountId: keygen.accountId,
    messageHash: hash,
    participants: [{ partyId: "user_device", shareData: share.shareData }, { partyId: "server_party_1" }],
  });
  check(share.publicKey, hash, sig);
  const session = await client.getSession(sig.sessionId);
  assert.equal(session.status, "completed");
  assert.equal(session.r, sig.r);
});

test("signTransaction with server parties only waits for the session", async () => {
  const { keygen, share } = wallet;
  const hash = "0x" + randomHash();
  const sig = await client.signTransaction({
    accountId: keygen.accountId,
    messageHash: hash,
    participants: [{ partyId: "server_party_1" }, { partyId: "server_party_2" }],
  });
  check(share.publicKey, hash, sig);
});

test("createSign, then the device with an access token", async () => {
  const { keygen, share } = wallet;
  const hash = randomHash();
  const created = await client.createSign({
    accountId: keygen.accountId,
    messageHash: hash,
    participants: [{ partyId: "user_device" }, { partyId: "server_party_2" }],
  });
  assert.equal(created.status, "created");
  assert.equal(created.signature, undefined);
  const token = await client.createAccessToken(keygen.accountId);
  const device = new MPCClient({ baseUrl: system.url, accessToken: token.accessToken });
  const answer = await device.signWithUserShare({
    sessionId: created.sessionId,
    partyId: "user_device",
    joinToken: created.joinTokens.user_device,
    shareData: share.shareData,
    messageHash: hash,
  });
  check(share.publicKey, hash, answer);
  await assert.rejects(device.listAccounts(), (e) => e instanceof MPCError && e.status === 401 && e.code === "invalid_api_key");
});

test("refresh: the device's new share signs", async () => {
  const { keygen, share } = wallet;
  const refresh = await client.refreshAccount(keygen.accountId);
  const renewed = await client.refreshWithUserShare({
    sessionId: refresh.sessionId,
    partyId: "user_device",
    joinToken: refresh.joinTokens.user_device,
    shareData: share.shareData,
  });
  assert.equal(renewed.publicKey, share.publicKey);
  assert.notEqual(renewed.shareData, share.shareData);
  assert.equal((await client.waitForSession(refresh.sessionId, { timeoutMs: 60_000 })).status, "completed");
  const hash = randomHash();
  const sig = await client.signTransaction({
    accountId: keygen.accountId,
    messageHash: hash,
    participants: [{ partyId: "user_device", shareData: renewed.shareData }, { partyId: "server_party_2" }],
  });
  check(share.publicKey, hash, sig);
  wallet = { keygen, share: renewed };
});

test("typed errors, suspension, listing, AbortSignal", async () => {
  const { keygen } = wallet;
  await client.suspendAccount(keygen.accountId);
  await assert.rejects(
    client.signTransaction({
      accountId: keygen.accountId,
      messageHash: randomHash(),
      participants: [{ partyId: "server_party_1" }, { partyId: "server_party_2" }],
    }),
    (e) => e instanceof MPCError && e.status === 403 && e.code === "account_suspended",
  );
  await client.activateAccount(keygen.accountId);
  await assert.rejects(
    client.getSession(randomUUID()),
    (e) => e.status === 404 && e.code === "session_not_found" && e.message === "session not found",
  );
  await assert.rejects(client.createSign({ accountId: keygen.accountId, messageHash: "abc", participants: [] }), (e) => e.code === "invalid_message_hash");
  const list = await client.listAccounts({ status: "active", limit: 100 });
  assert.ok(list.accounts.some((a) => a.accountId === keygen.accountId));
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(client.getSession(randomUUID(), { signal: controller.signal }), (e) => e.code === "aborted");
});

test("the EIP-1559 example: ethers recovers the wallet as the sender", async () => {
  const out = await signEip1559(client);
  assert.equal(out.sender, out.wallet);
  assert.equal(out.recovered, out.wallet);
  check(out.publicKey, out.hash, out.sig);
});
