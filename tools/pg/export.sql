-- Exports the seeds' credit tables as the CSV files ledger-import reads.
-- Run in the directory the files should land in:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f tools/pg/export.sql
-- (add `SET search_path TO platform;` first if the tables live in a schema).
\copy (SELECT "id", "email", "name" FROM "User" ORDER BY "id") TO 'User.csv' WITH (FORMAT csv, HEADER true)
\copy (SELECT "userId", "balance", "updatedAt" FROM "UserBalance" ORDER BY "userId") TO 'UserBalance.csv' WITH (FORMAT csv, HEADER true)
\copy (SELECT "transactionKey", "userId", "amount", "type", "runningBalance", "metadata", "isActive", "createdAt" FROM "CreditTransaction" ORDER BY "createdAt", "userId", "transactionKey") TO 'CreditTransaction.csv' WITH (FORMAT csv, HEADER true)
