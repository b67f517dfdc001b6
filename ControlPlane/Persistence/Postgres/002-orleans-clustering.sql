-- Orleans cluster membership (Microsoft.Orleans.Clustering.AdoNet 10.x). DeploymentId is the ClusterId.
-- Every membership change bumps the cluster's row in OrleansMembershipVersionTable, conditioned on the version the
-- silo last read: that single row is what makes concurrent changes from several silos safe (optimistic concurrency).

CREATE TABLE OrleansMembershipVersionTable
(
    DeploymentId varchar(150)   NOT NULL,
    Timestamp    timestamptz(3) NOT NULL DEFAULT now(),
    Version      integer        NOT NULL DEFAULT 0,
    CONSTRAINT PK_OrleansMembershipVersionTable_DeploymentId PRIMARY KEY (DeploymentId)
);

CREATE TABLE OrleansMembershipTable
(
    DeploymentId varchar(150)   NOT NULL,
    Address      varchar(45)    NOT NULL,
    Port         integer        NOT NULL,
    Generation   integer        NOT NULL,
    SiloName     varchar(150)   NOT NULL,
    HostName     varchar(150)   NOT NULL,
    Status       integer        NOT NULL,
    ProxyPort    integer        NULL,
    SuspectTimes varchar(8000)  NULL,
    StartTime    timestamptz(3) NOT NULL,
    IAmAliveTime timestamptz(3) NOT NULL,
    CONSTRAINT PK_MembershipTable_DeploymentId PRIMARY KEY (DeploymentId, Address, Port, Generation),
    CONSTRAINT FK_MembershipTable_MembershipVersionTable_DeploymentId
        FOREIGN KEY (DeploymentId) REFERENCES OrleansMembershipVersionTable (DeploymentId)
);

-- Moves the cluster's version on by one if it still is the version the caller read; true when it did.
CREATE FUNCTION controlplane_orleans_bump_version(p_deployment_id varchar, p_version integer)
RETURNS boolean
LANGUAGE sql AS
$body$
    WITH bumped AS (
        UPDATE OrleansMembershipVersionTable AS v
           SET Version = v.Version + 1, Timestamp = now()
         WHERE v.DeploymentId = p_deployment_id AND v.Version = p_version AND v.Version < 2147483647
        RETURNING 1)
    SELECT count(*) = 1 FROM bumped;
$body$;

-- Adds a silo's row and bumps the version, both or neither: 1 when done, 0 when the version moved on (another silo
-- changed the table since this one read it) or the row already exists. Orleans then re-reads and retries.
CREATE FUNCTION controlplane_orleans_insert_membership(
    p_deployment_id varchar, p_address varchar, p_port integer, p_generation integer, p_silo_name varchar,
    p_host_name varchar, p_status integer, p_proxy_port integer, p_start_time timestamptz, p_i_am_alive_time timestamptz,
    p_version integer)
RETURNS integer
LANGUAGE plpgsql AS
$body$
DECLARE
    affected integer;
BEGIN
    -- The inner block is a subtransaction: raising CPM01 in it undoes the version bump too.
    BEGIN
        IF NOT controlplane_orleans_bump_version(p_deployment_id, p_version) THEN
            RETURN 0;
        END IF;

        INSERT INTO OrleansMembershipTable
            (DeploymentId, Address, Port, Generation, SiloName, HostName, Status, ProxyPort, StartTime, IAmAliveTime)
        VALUES
            (p_deployment_id, p_address, p_port, p_generation, p_silo_name, p_host_name, p_status, p_proxy_port,
             p_start_time, p_i_am_alive_time)
        ON CONFLICT (DeploymentId, Address, Port, Generation) DO NOTHING;
        GET DIAGNOSTICS affected = ROW_COUNT;
        IF affected = 0 THEN
            RAISE EXCEPTION 'membership row exists' USING ERRCODE = 'CPM01';
        END IF;
    EXCEPTION WHEN SQLSTATE 'CPM01' THEN
        RETURN 0;
    END;
    RETURN 1;
END
$body$;

-- Changes a silo's status and suspicions and bumps the version, both or neither; 1 when done, else 0.
CREATE FUNCTION controlplane_orleans_update_membership(
    p_deployment_id varchar, p_address varchar, p_port integer, p_generation integer, p_status integer,
    p_suspect_times varchar, p_i_am_alive_time timestamptz, p_version integer)
RETURNS integer
LANGUAGE plpgsql AS
$body$
DECLARE
    affected integer;
BEGIN
    BEGIN
        IF NOT controlplane_orleans_bump_version(p_deployment_id, p_version) THEN
            RETURN 0;
        END IF;

        UPDATE OrleansMembershipTable AS m
           SET Status = p_status, SuspectTimes = p_suspect_times, IAmAliveTime = GREATEST(m.IAmAliveTime, p_i_am_alive_time)
         WHERE m.DeploymentId = p_deployment_id AND m.Address = p_address AND m.Port = p_port AND m.Generation = p_generation;
        GET DIAGNOSTICS affected = ROW_COUNT;
        IF affected = 0 THEN
            RAISE EXCEPTION 'no membership row' USING ERRCODE = 'CPM01';
        END IF;
    EXCEPTION WHEN SQLSTATE 'CPM01' THEN
        RETURN 0;
    END;
    RETURN 1;
END
$body$;

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('InsertMembershipVersionKey', '
    WITH created AS (
        INSERT INTO OrleansMembershipVersionTable (DeploymentId) VALUES (@DeploymentId)
        ON CONFLICT (DeploymentId) DO NOTHING
        RETURNING 1)
    SELECT count(*)::integer FROM created;'),

('InsertMembershipKey', '
    SELECT controlplane_orleans_insert_membership(
        @DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName, @Status, @ProxyPort,
        @StartTime, @IAmAliveTime, @Version);'),

('UpdateMembershipKey', '
    SELECT controlplane_orleans_update_membership(
        @DeploymentId, @Address, @Port, @Generation, @Status, @SuspectTimes, @IAmAliveTime, @Version);'),

-- A heartbeat: never moves IAmAliveTime backwards, never touches the version.
('UpdateIAmAlivetimeKey', '
    UPDATE OrleansMembershipTable
       SET IAmAliveTime = GREATEST(IAmAliveTime, @IAmAliveTime)
     WHERE DeploymentId = @DeploymentId AND Address = @Address AND Port = @Port AND Generation = @Generation;'),

-- The version row is returned even when the silo has no row yet (LEFT JOIN): Orleans needs the version to insert it.
('MembershipReadRowKey', '
    SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
           m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
      FROM OrleansMembershipVersionTable v
      LEFT JOIN OrleansMembershipTable m
        ON m.DeploymentId = v.DeploymentId AND m.Address = @Address AND m.Port = @Port AND m.Generation = @Generation
     WHERE v.DeploymentId = @DeploymentId;'),

('MembershipReadAllKey', '
    SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
           m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
      FROM OrleansMembershipVersionTable v
      LEFT JOIN OrleansMembershipTable m ON m.DeploymentId = v.DeploymentId
     WHERE v.DeploymentId = @DeploymentId;'),

('DeleteMembershipTableEntriesKey', '
    DELETE FROM OrleansMembershipTable WHERE DeploymentId = @DeploymentId;
    DELETE FROM OrleansMembershipVersionTable WHERE DeploymentId = @DeploymentId;'),

-- Status 3 is Active: clients connect only to gateways of live silos.
('GatewaysQueryKey', '
    SELECT Address, ProxyPort, Generation
      FROM OrleansMembershipTable
     WHERE DeploymentId = @DeploymentId AND Status = @Status AND ProxyPort > 0;'),

-- Status 6 is Dead: only rows of silos that are dead, unsuspected and silent since the cut-off are pruned.
('CleanupDefunctSiloEntriesKey', '
    DELETE FROM OrleansMembershipTable
     WHERE DeploymentId = @DeploymentId AND Status = 6
       AND IAmAliveTime < @IAmAliveTime AND StartTime < @IAmAliveTime
       AND COALESCE(SuspectTimes, '''') = '''';'),

-- Prunes one dead row, only if it is still exactly as the silo read it.
('CleanupDefunctSiloEntryKey', '
    DELETE FROM OrleansMembershipTable
     WHERE DeploymentId = @DeploymentId AND Status = 6
       AND Address = @Address AND Port = @Port AND Generation = @Generation
       AND IAmAliveTime = @IAmAliveTime AND StartTime = @StartTime
       AND COALESCE(SuspectTimes, '''') = COALESCE(@SuspectTimes, '''');');
