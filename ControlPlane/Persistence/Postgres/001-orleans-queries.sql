-- The Orleans ADO.NET providers (clustering, reminders) read every statement they run from this table at start-up,
-- by key; the statements themselves are in the scripts that follow. Their names and the names and types of their
-- parameters and result columns are the providers' contract; the SQL behind them is ours.
CREATE TABLE OrleansQuery
(
    QueryKey  varchar(64)   NOT NULL,
    QueryText varchar(8000) NOT NULL,
    CONSTRAINT OrleansQuery_Key PRIMARY KEY (QueryKey)
);
