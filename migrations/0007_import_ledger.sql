CREATE TABLE `import_ledger` (
	`job_id` text NOT NULL,
	`row_from` integer NOT NULL,
	`row_to` integer NOT NULL,
	`outcome` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `row_from`)
);
--> statement-breakpoint
CREATE INDEX `import_ledger_created_idx` ON `import_ledger` (`created_at`);