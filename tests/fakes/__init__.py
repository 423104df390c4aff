"""In-memory fakes of each domain's ports (unit of work, repositories, object storage), one
module per domain, for unit tests of the services' logic without a database or sockets."""
