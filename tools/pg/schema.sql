-- The seeds' credit tables (the PostgreSQL design this ledger replaces), as
-- their Prisma schema creates them. Used by the import test and the
-- side-by-side benchmark (tools/bench-vs-postgres.sh).
CREATE TYPE "CreditTransactionType" AS ENUM ('TOP_UP', 'USAGE', 'GRANT', 'REFUND', 'CARD_CHECK');

CREATE TABLE "User" (
  "id" TEXT PRIMARY KEY,
  "email" TEXT NOT NULL UNIQUE,
  "name" TEXT,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE "UserBalance" (
  "userId" TEXT PRIMARY KEY REFERENCES "User"("id") ON DELETE CASCADE,
  "balance" INTEGER NOT NULL DEFAULT 0,
  "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE "CreditTransaction" (
  "transactionKey" TEXT NOT NULL,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "userId" TEXT NOT NULL REFERENCES "User"("id") ON DELETE CASCADE,
  "amount" INTEGER NOT NULL,
  "type" "CreditTransactionType" NOT NULL,
  "runningBalance" INTEGER,
  "isActive" BOOLEAN NOT NULL DEFAULT true,
  "metadata" JSONB,
  PRIMARY KEY ("transactionKey", "userId")
);
CREATE INDEX ON "CreditTransaction" ("userId", "createdAt");
