-- The optuna-pandalm schema 2, as `Store(url)` created it on PostgreSQL at commit 925ebde;
-- used to test the migration to schema 3.

CREATE TABLE pandalm_prompt_sets (
	id SERIAL NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	n_prompts INTEGER NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (hash)
);

CREATE TABLE pandalm_verdicts (
	id SERIAL NOT NULL, 
	judge_name VARCHAR(512) NOT NULL, 
	prompt_hash VARCHAR(64) NOT NULL, 
	response_1_hash VARCHAR(64) NOT NULL, 
	response_2_hash VARCHAR(64) NOT NULL, 
	winner SMALLINT, 
	p_tie FLOAT, 
	p_1 FLOAT, 
	p_2 FLOAT, 
	reason TEXT NOT NULL, 
	reference TEXT NOT NULL, 
	raw TEXT NOT NULL, 
	latency_s FLOAT, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_pandalm_verdicts_key UNIQUE (judge_name, prompt_hash, response_1_hash, response_2_hash), 
	CONSTRAINT ck_pandalm_verdicts_winner CHECK (winner IN (0, 1, 2) OR winner IS NULL)
);

CREATE TABLE pandalm_version (
	id INTEGER NOT NULL, 
	schema_version INTEGER NOT NULL, 
	library_version VARCHAR(64) NOT NULL, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_pandalm_version_one_row CHECK (id = 1)
);

CREATE TABLE pandalm_arenas (
	id SERIAL NOT NULL, 
	study_name VARCHAR(512) NOT NULL, 
	prompt_set_id INTEGER NOT NULL, 
	position VARCHAR(16) DEFAULT 'random' NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (study_name), 
	FOREIGN KEY(prompt_set_id) REFERENCES pandalm_prompt_sets (id)
);

CREATE TABLE pandalm_prompts (
	id SERIAL NOT NULL, 
	prompt_set_id INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	user_id TEXT, 
	instruction TEXT NOT NULL, 
	input TEXT NOT NULL, 
	reference TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_pandalm_prompts_position UNIQUE (prompt_set_id, position), 
	FOREIGN KEY(prompt_set_id) REFERENCES pandalm_prompt_sets (id)
);

CREATE TABLE pandalm_players (
	id SERIAL NOT NULL, 
	arena_id INTEGER NOT NULL, 
	key VARCHAR(600) NOT NULL, 
	trial_number INTEGER, 
	step INTEGER, 
	name VARCHAR(512), 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_pandalm_players_key UNIQUE (arena_id, key), 
	FOREIGN KEY(arena_id) REFERENCES pandalm_arenas (id)
);

CREATE TABLE pandalm_generations (
	id SERIAL NOT NULL, 
	player_id INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	text TEXT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_pandalm_generations_position UNIQUE (player_id, position), 
	FOREIGN KEY(player_id) REFERENCES pandalm_players (id)
);

CREATE TABLE pandalm_matches (
	id SERIAL NOT NULL, 
	arena_id INTEGER NOT NULL, 
	player_a_id INTEGER NOT NULL, 
	player_b_id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(arena_id) REFERENCES pandalm_arenas (id), 
	FOREIGN KEY(player_a_id) REFERENCES pandalm_players (id), 
	FOREIGN KEY(player_b_id) REFERENCES pandalm_players (id)
);

CREATE TABLE pandalm_games (
	id SERIAL NOT NULL, 
	arena_id INTEGER NOT NULL, 
	match_id INTEGER NOT NULL, 
	prompt_position INTEGER NOT NULL, 
	first_player_id INTEGER NOT NULL, 
	second_player_id INTEGER NOT NULL, 
	low_player_id INTEGER NOT NULL, 
	high_player_id INTEGER NOT NULL, 
	verdict_id INTEGER NOT NULL, 
	outcome SMALLINT NOT NULL, 
	created_at FLOAT NOT NULL, 
	annotator VARCHAR(512) DEFAULT 'judge' NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_pandalm_games_key UNIQUE (arena_id, low_player_id, high_player_id, prompt_position, annotator), 
	CONSTRAINT ck_pandalm_games_outcome CHECK (outcome IN (0, 1, 2)), 
	CONSTRAINT ck_pandalm_games_self CHECK (first_player_id <> second_player_id), 
	FOREIGN KEY(arena_id) REFERENCES pandalm_arenas (id), 
	FOREIGN KEY(match_id) REFERENCES pandalm_matches (id), 
	FOREIGN KEY(first_player_id) REFERENCES pandalm_players (id), 
	FOREIGN KEY(second_player_id) REFERENCES pandalm_players (id), 
	FOREIGN KEY(verdict_id) REFERENCES pandalm_verdicts (id)
);

CREATE INDEX ix_pandalm_games_arena ON pandalm_games (arena_id);
