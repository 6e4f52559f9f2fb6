// An EIP-1559 transaction built with ethers v6, its hash signed through the SDK (a 2-of-3
// wallet: the device's share and server party 1, in one call), the signature attached, and
// the sender recovered: it is the wallet's address.
//
//   MPC_URL=http://127.0.0.1:4000 MPC_API_KEY=… node examples/eip1559.mjs
import { Signature, Transaction, computeAddress, parseEther, parseUnits, recoverAddress } from "ethers";
import { MPCClient } from "@rwadurian/mpc-client-sdk";

export async function signEip1559(client) {
  const keygen = await client.createKeygen({
    thresholdN: 3,
    thresholdT: 2,
    participants: [
      { partyId: "user_device_eip1559", deviceType: "ios" },
      { partyId: "server_party_1", deviceType: "server" },
      { partyId: "server_party_2", deviceType: "server" },
    ],
  });
  const share = await client.generateUserShare({
    sessionId: keygen.sessionId,
    partyId: "user_device_eip1559",
    joinToken: keygen.joinTokens["user_device_eip1559"],
  });
  const wallet = computeAddress("0x" + share.publicKey);

  const tx = Transaction.from({
    type: 2,
    chainId: 1,
    nonce: 0,
    to: "0x742d35cc6634c0532925a3b844bc9e7595f0beb0",
    value: parseEther("1.0"),
    gasLimit: 21000n,
    maxFeePerGas: parseUnits("50", "gwei"),
    maxPriorityFeePerGas: parseUnits("2", "gwei"),
  });
  const sig = await client.signTransaction({
    accountId: keygen.accountId,
    messageHash: tx.unsignedHash.slice(2),
    participants: [
      { partyId: "user_device_eip1559", shareData: share.shareData },
      { partyId: "server_party_1" },
    ],
  });
  tx.signature = Signature.from({ r: "0x" + sig.r, s: "0x" + sig.s, v: 27 + sig.v });
  return {
    wallet,
    sender: tx.from,
    recovered: recoverAddress(tx.unsignedHash, tx.signature),
    serialized: tx.serialized,
    sig,
    publicKey: share.publicKey,
    hash: tx.unsignedHash,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const client = new MPCClient({ baseUrl: process.env.MPC_URL ?? "http://127.0.0.1:4000", apiKey: process.env.MPC_API_KEY });
  const out = await signEip1559(client);
  console.log(`wallet    ${out.wallet}\nsender    ${out.sender}\nsigned tx ${out.serialized}`);
  if (out.sender !== out.wallet) process.exit(1);
}
